"""ROS-free data layer: episodes on disk, windows for training, bag import, LeRobot export, motor babbling."""
