"""learnscope: what does a learner find easy to learn, and which learning rule is a circuit using."""

__version__ = "0.1.0"
