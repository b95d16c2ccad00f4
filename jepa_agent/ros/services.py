"""Calling services from short-lived processes (the CLI's stand-in for `ros2 service call`, absent here)."""
from __future__ import annotations

import rclpy
from std_srvs.srv import Trigger


def call_trigger(service: str, timeout: float = 10.0) -> tuple[bool, str]:
    """Call a std_srvs/Trigger service; returns (success, message), with a clear message if nobody answers."""
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('jepa_agent_service_call', context=context)
    try:
        client = node.create_client(Trigger, service)
        if not client.wait_for_service(timeout_sec=timeout):
            return False, f'service {service} is not available (is the node running, in this ROS_DOMAIN_ID?)'
        future = client.call_async(Trigger.Request())
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(node)
        executor.spin_until_future_complete(future, timeout_sec=timeout)
        if not future.done():
            return False, f'service {service} did not answer within {timeout:g} s'
        return future.result().success, future.result().message
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=context)
