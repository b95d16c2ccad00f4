"""One-status /diagnostics messages, built the same way by every node."""
from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.publisher import Publisher


def publish_status(node: Node, publisher: Publisher, name: str, level: bytes, message: str, values: dict,
                   hardware_id: str = '') -> None:
    """Publish a DiagnosticArray holding one status; `values` are stringified (ROS KeyValue holds strings)."""
    status = DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id,
                              values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
    msg = DiagnosticArray(status=[status])
    msg.header.stamp = node.get_clock().now().to_msg()
    publisher.publish(msg)
