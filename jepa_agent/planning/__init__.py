"""ROS-free latent planning: CEM over action sequences with hard joint bounds."""
