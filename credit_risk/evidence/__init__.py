"""Credit evidence: metrics, calibration, fairness, monotonicity, vintages, the gate, evaluation
and its report."""
