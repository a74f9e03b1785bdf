"""Moved to :mod:`learnscope.validation`; kept only until ``bias/distances.py`` imports from there. Delete then."""

from learnscope.validation import check_finite, check_ndim

__all__ = ["check_finite", "check_ndim"]
