"""Thin ROS 2 glue: message <-> numpy conversion, QoS profiles, parameter helpers. Only nodes import this."""
