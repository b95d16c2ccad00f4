"""rclpy nodes: thin adapters between ROS messages and the ROS-free core (one node per file)."""
