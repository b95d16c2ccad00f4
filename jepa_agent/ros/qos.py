"""QoS profiles shared by all nodes, so publishers and subscribers always match."""
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)

#: camera and other high-rate sensor streams: best effort, depth 1 (best effort matches reliable publishers too)
SENSOR = qos_profile_sensor_data
#: commands and joint states: reliable, small queue
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
#: goals and other latched state: late joiners get the last message
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
