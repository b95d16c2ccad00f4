"""ROS-free training: offline train loop (single/multi-GPU), evaluation, online continual learner."""
