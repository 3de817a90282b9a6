"""npusuite.inspection: visual defect inspection for factory lines."""
