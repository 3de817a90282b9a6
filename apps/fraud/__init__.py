"""npusuite.fraud: streaming fraud scoring for banks."""
