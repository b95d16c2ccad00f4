"""jepa_agent: an action-conditioned JEPA world model that lets a robot arm learn its world and plan in it."""
__version__ = '0.1.0'
