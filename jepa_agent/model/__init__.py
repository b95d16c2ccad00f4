"""ROS-free world model: encoder, predictor, anti-collapse regularizers, checkpoints."""
