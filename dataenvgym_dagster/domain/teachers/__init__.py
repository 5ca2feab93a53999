"""Data generation engines (teachers): turn a data generation plan into training examples."""
