"""Figures and single-file HTML reports."""
