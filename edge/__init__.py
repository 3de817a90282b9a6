"""npusuite.edge: the edge agent, signed updates and fleet rollouts."""
