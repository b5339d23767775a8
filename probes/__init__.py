"""Linear probes on cached residual-stream activations: estimators, controls, metrics, layer sweeps, directions."""
