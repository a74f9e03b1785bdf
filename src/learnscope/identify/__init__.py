"""Identifying learning rules from recordings of simulated circuits (Nayebi et al., NeurIPS 2020)."""
