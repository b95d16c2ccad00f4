"""Managed (lifecycle) nodes for the nodes that command the arm or host a model, so a system bringup (nav2's
lifecycle_manager, `ros2 lifecycle set`) decides when they load and when they may move the arm.

    class ExplorerNode(ManagedNode):
        def __init__(self):
            super().__init__('explorer')
            self.config = declare_config(self, ExplorerConfig)   # parameters are declared and checked at once
        def configure(self) -> None:                            # a ConfigError fails the transition, saying why
            self.pub = self.create_command_publisher(JointTrajectory, topics.TRAJECTORY, RELIABLE)
            self.create_timer(0.1, self.step)                   # step() commands only while self.active
        def release(self) -> None: ...                          # optional: stop threads started by configure()

- configure: `configure()` loads what the node needs (a model) and creates its publishers, subscriptions, timers;
- activate: `self.active` becomes True (then `activated()`) and the node may command the arm;
- deactivate: `self.active` is False (then `deactivated()`) and the node holds: it publishes no command (its
  command publisher is a lifecycle publisher, so nothing gets out even by mistake);
- cleanup / shutdown: `release()`, then everything `configure()` created is destroyed (configure can run again).

`autostart` (read-only parameter, default true) configures and activates the node at start-up, so `ros2 run` and the
launch files need no lifecycle manager; with `autostart:=false` it waits unconfigured for one. Where rclpy has no
lifecycle support the node is a plain Node that configures and activates at start-up.
"""
from __future__ import annotations

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node

from jepa_agent.config import ConfigError

try:
    from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
except ImportError:            # rclpy without lifecycle support: plain nodes, started at once
    LifecycleNode = None

AUTOSTART_DESCRIPTION = ('Configure and activate at start-up (no lifecycle manager needed); false: wait unconfigured '
                         'for `ros2 lifecycle set <node> configure` / activate.')


class ManagedNode(LifecycleNode or Node):
    """A node whose model loading and arm commands follow the lifecycle states (see the module docstring)."""

    def __init__(self, name: str):
        super().__init__(name)
        self.active = False
        """True only while active: the node may command the arm."""
        self.autostart = bool(self.declare_parameter(
            'autostart', True, ParameterDescriptor(description=AUTOSTART_DESCRIPTION, read_only=True)).value)
        self._created: list = []          # what configure() created, destroyed on cleanup
        self._configure_error: ConfigError | None = None

    # -- what a node implements ----------------------------------------------------------------------------------
    def configure(self) -> None:
        """Load what the node needs and create its publishers, subscriptions and timers; ConfigError if it cannot."""
        raise NotImplementedError

    def activated(self) -> None:
        """Start what runs only while active (e.g. a training thread); `self.active` is already True."""

    def deactivated(self) -> None:
        """Stop what activated() started; `self.active` is already False."""

    def release(self) -> None:
        """Stop what configure() started beyond ROS entities (threads); called on cleanup, shutdown and destroy,
        also when the node was never configured."""

    def create_command_publisher(self, msg_type, topic: str, qos):
        """A publisher for arm commands that publishes nothing unless the node is active."""
        if LifecycleNode is None:
            return self.create_publisher(msg_type, topic, qos)
        return self.create_lifecycle_publisher(msg_type, topic, qos)

    # -- start-up ----------------------------------------------------------------------------------------------
    def start(self) -> None:
        """With autostart, configure and activate now (run_node calls this once the node is built); ConfigError if
        configuring fails."""
        if not self.autostart:
            self.get_logger().info('unconfigured: waiting for a lifecycle manager (autostart is false)')
            return
        if LifecycleNode is None:
            self._configure()
            self.active = True
            self.activated()
            return
        self.trigger_configure()
        if self._configure_error is not None:
            raise self._configure_error
        if self.trigger_activate() != TransitionCallbackReturn.SUCCESS:
            raise ConfigError(f'{self.get_name()} configured but could not be activated')

    def _configure(self) -> None:
        before = set(map(id, self._entities()))
        try:
            self.configure()
        finally:
            self._created = [e for e in self._entities() if id(e) not in before]

    def _entities(self) -> list:
        return [*self.publishers, *self.subscriptions, *self.timers, *self.services, *self.clients]

    def _release_all(self) -> None:
        self._set_active(False)
        self.release()
        for entity in self._created:
            if entity in self.publishers:
                (self.destroy_lifecycle_publisher if LifecycleNode else self.destroy_publisher)(entity)
            elif entity in self.subscriptions:
                self.destroy_subscription(entity)
            elif entity in self.timers:
                self.destroy_timer(entity)
            elif entity in self.services:
                self.destroy_service(entity)
            else:
                self.destroy_client(entity)
        self._created = []

    def _set_active(self, active: bool) -> None:
        if active == self.active:
            return
        self.active = active
        if active:
            self.activated()
        else:
            self.deactivated()

    def destroy_node(self) -> None:
        self._set_active(False)
        self.release()
        super().destroy_node()

    # -- lifecycle transitions (rclpy calls these) -------------------------------------------------------------
    if LifecycleNode is not None:
        def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
            self._configure_error = None
            try:
                self._configure()
            except ConfigError as exc:
                self._configure_error = exc
                self.get_logger().error(f'configuration error: {exc}')
                self._release_all()
                return TransitionCallbackReturn.FAILURE
            return super().on_configure(state)

        def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
            result = super().on_activate(state)          # enables the command publishers
            self._set_active(result == TransitionCallbackReturn.SUCCESS)
            return result

        def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
            self._set_active(False)
            return super().on_deactivate(state)

        def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
            self._release_all()
            return super().on_cleanup(state)

        def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
            self._release_all()
            return super().on_shutdown(state)
