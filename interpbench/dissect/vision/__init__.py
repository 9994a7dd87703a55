"""Vision dissection: synthetic scenes with concept masks, the scene CNN (committed weights,
training script), pixel-row batching, and path interventions with causal explanatory graphs."""
