"""npusuite.review: the case-review web app for fraud analysts and QC engineers."""
