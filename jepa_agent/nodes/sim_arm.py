"""Simulated arm on the standard ROS 2 arm interfaces: a stand-in for Gazebo + ros2_control.

    sim_arm --ros-args --params-file config/sim_arm.yaml
    sim_arm --ros-args -p image_size:=96 -p camera_hz:=15.0
    sim_arm --ros-args -r joint_states:=/sim/joint_states -r camera/image_raw:=/sim/image_raw

Publishes joint_states and camera/image_raw (rgb8) + camera/camera_info; follows JointTrajectory messages on
arm_controller/joint_trajectory (relative names from jepa_agent.ros.topics) like ros2_control's
joint_trajectory_controller (`controller: joint_trajectory`, the default: each trajectory starts from the
controller's setpoint with `interpolate_from_desired_state`, the default, else from the arm's current position, is
interpolated linearly to each point's time_from_start, and nothing limits how fast that is), after
`command_latency_s`; `controller: rate_limited` also caps setpoint speed at the velocity limit, which hides commands
that break the limit. /diagnostics reports how fast the arm really moved and how many commands asked for more than
the velocity limit from where they started. Like a real camera, frames can be published late (camera_latency_s;
stamped at exposure), with jitter (camera_jitter_s) or not at all (camera_drop_rate). ~/reset (std_srvs/Trigger)
re-seeds the scene. Physics runs in real time in its own thread and the camera renders in another (an EGL context
belongs to the thread that creates it, and rendering inside a timer starved the other streams).
"""
from __future__ import annotations

import math
import sys
import threading
import time
from dataclasses import dataclass, fields

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from jepa_agent.config import ConfigError, bounded
from jepa_agent.data.messages import MessageError, trajectory_points, truncate
from jepa_agent.ros import topics
from jepa_agent.ros.conversions import rgb_to_image
from jepa_agent.ros.diagnostics import publish_status
from jepa_agent.ros.params import declare_config
from jepa_agent.ros.qos import RELIABLE, SENSOR
from jepa_agent.ros.run import run_node
from jepa_agent.sim.arm_env import ArmEnv, ArmEnvConfig
from jepa_agent.sim.camera_link import CameraLink
from jepa_agent.sim.controlled_arm import ControlledArm
from jepa_agent.sim.trajectory import TrajectoryError

#: behind real time by more than this, physics skips ahead instead of racing to catch up
MAX_LAG_S = 0.25


@dataclass
class SimArmConfig(ArmEnvConfig):
    """sim_arm node parameters: the env's (ArmEnvConfig) plus rates, camera frame and the seed."""

    command_latency_s: float = bounded(0.05, ge=0, le=2)
    """Delay (s) between receiving a trajectory and starting it (transport and controller latency of a real arm)."""
    control_hz: float = bounded(100.0, ge=1, le=100)
    """Setpoint update rate of the simulated controller."""
    seed: int = 0
    """Scene seed of the first reset; the k-th ~/reset call uses seed + k."""
    # rates
    joint_state_hz: float = bounded(50.0, gt=0, le=1000)
    """/joint_states publishing rate."""
    camera_hz: float = bounded(10.0, gt=0, le=1000)
    """Camera image + camera_info rendering rate (frames exposed per second)."""
    # camera realism (on by default, like hardware; 0 = off): a real camera delivers frames late, with jitter, and
    # drops some
    camera_latency_s: float = bounded(0.03, ge=0, le=2)
    """Delay (s) from a frame's exposure (its header stamp) to its publication (transport and processing)."""
    camera_jitter_s: float = bounded(0.01, ge=0, le=2)
    """Extra delay per frame, uniform in [0, camera_jitter_s] s (seeded); frames still leave in stamp order."""
    camera_drop_rate: float = bounded(0.02, ge=0, lt=1)
    """Fraction in [0, 1) of frames rendered but never published (seeded)."""
    camera_frame_id: str = 'camera'
    """frame_id of the camera images and camera_info."""
    encoding: str = 'rgb8'
    """Image encoding published: rgb8 or bgr8 (what many camera drivers send)."""

    def __post_init__(self):
        super().__post_init__()
        if self.encoding not in ('rgb8', 'bgr8'):
            raise ValueError(f'encoding must be rgb8 or bgr8, got {self.encoding=}')

    def env_config(self) -> ArmEnvConfig:
        return ArmEnvConfig(**{f.name: getattr(self, f.name) for f in fields(ArmEnvConfig)})


class RateCounter:
    """Events per second since the last `rate()` call (for diagnostics)."""

    def __init__(self):
        self.count, self._since = 0, time.monotonic()

    def rate(self) -> float:
        now = time.monotonic()
        hz = self.count / max(now - self._since, 1e-9)
        self.count, self._since = 0, now
        return hz


class SimArmNode(Node):
    def __init__(self):
        super().__init__('sim_arm')
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.config = declare_config(self, SimArmConfig)
        self.exit_code = 0
        try:
            self.env = ArmEnv(self.config.env_config())
            self.env.reset(self.config.seed, render=False)
        except ValueError as exc:     # a scene, camera or arm description (working range) this node cannot simulate
            raise ConfigError(f'[sim_arm] {exc}') from exc
        self.arm = ControlledArm(self.env, self.config.command_latency_s)
        self._lock = threading.Lock()          # guards env and arm
        self._resets = 0
        self._counters = {k: RateCounter() for k in ('joint_states', 'camera', 'camera_rendered')}
        self.camera_link = CameraLink(self.config.camera_latency_s, self.config.camera_jitter_s,
                                      self.config.camera_drop_rate, self.config.seed)
        self._rejected = self._overruns = 0

        cfg = self.config
        self.joint_pub = self.create_publisher(JointState, topics.JOINT_STATES, RELIABLE)
        self.image_pub = self.create_publisher(Image, topics.IMAGE, SENSOR)
        self.info_pub = self.create_publisher(CameraInfo, topics.CAMERA_INFO, SENSOR)
        self.diag_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, RELIABLE)
        self.block_pub = self.create_publisher(PoseStamped, topics.BLOCK_POSE, RELIABLE) if self.env.has_block \
            else None
        self.command_sub = self.create_subscription(JointTrajectory, topics.TRAJECTORY, self.on_trajectory, RELIABLE)
        self.create_service(Trigger, '~/reset', self.on_reset)
        self.create_timer(1.0 / cfg.joint_state_hz, self.publish_joint_states)
        self.create_timer(1.0, self.publish_diagnostics)
        self._threads = [threading.Thread(target=self._guarded, args=(loop,), name=loop.__name__, daemon=True)
                         for loop in (self._physics_loop, self._render_loop)]
        for thread in self._threads:
            thread.start()
        self.get_logger().info(
            f'sim arm ready: joints {self.env.joint_names}, camera {cfg.image_size}px at {cfg.camera_hz} Hz on '
            f'{self.image_pub.topic_name} + {self.info_pub.topic_name}, joint states at {cfg.joint_state_hz} Hz on '
            f'{self.joint_pub.topic_name}, commands on {self.command_sub.topic_name}')

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # -- commands ------------------------------------------------------------------------------------------------
    def on_trajectory(self, msg: JointTrajectory) -> None:
        """Queue the trajectory to replace the running one after command_latency_s, or reject the message with a
        (throttled) warning and keep holding."""
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        try:
            times, positions = trajectory_points(msg, self.env.joint_names)
            with self._lock:
                self.arm.send(times, positions, self.now(), stamp)
        except (MessageError, TrajectoryError) as exc:
            self._rejected += 1
            self.get_logger().warning(f'rejected trajectory on {self.command_sub.topic_name}: {truncate(exc)}; '
                                      'holding', throttle_duration_sec=2.0)

    def on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self._resets += 1
        seed = self.config.seed + self._resets
        with self._lock:
            self.arm.clear()
            self.env.reset(seed, render=False)
            q = self.env.joint_positions()
        response.success, response.message = True, f'reset with seed {seed}; joints at {np.round(q, 3).tolist()}'
        self.get_logger().info(response.message)
        return response

    # -- threads -------------------------------------------------------------------------------------------------
    def _guarded(self, loop) -> None:
        """Run a worker loop; if it fails, log why and stop the node (exit code 1) rather than run half-blind."""
        try:
            loop()
        except Exception as exc:  # noqa: BLE001 - any failure here is fatal for the node and must be reported
            if self._stop.is_set() or not self.context.ok():
                return   # shutting down (Ctrl-C invalidates the context under a publishing thread): not a failure
            self.get_logger().fatal(f'{loop.__name__} failed: {type(exc).__name__}: {exc}')
            self.exit_code = 1
            self._stop.set()
            self.context.try_shutdown()

    def _physics_loop(self) -> None:
        """Step physics in real time, applying the trajectory setpoint every control period."""
        period = self.env.control_dt
        deadline = time.monotonic()
        while not self._stop.is_set():
            with self._lock:
                # this tick's scheduled time: after a stall, the catch-up ticks replay the setpoints they missed
                # instead of jumping to the newest one (a step in the setpoint would spin the arm up like a hit)
                self.arm.tick(self.now() - max(0.0, time.monotonic() - deadline), period)
            deadline += period
            delay = deadline - time.monotonic()
            if delay < -MAX_LAG_S:
                self._overruns += 1
                deadline = time.monotonic()
            elif delay > 0:
                self._stop.wait(delay)

    def _render_loop(self) -> None:
        """Render the current state at camera_hz with a renderer owned by this thread; publish each frame when the
        camera link delivers it (at once, unless camera latency, jitter or drops are set)."""
        view = ArmEnv(self.config.env_config())   # same model; its renderer (EGL context) lives in this thread
        info = self.camera_info()
        period = 1.0 / self.config.camera_hz
        deadline = time.monotonic()
        try:
            while not self._stop.is_set():
                if time.monotonic() >= deadline:
                    with self._lock:
                        qpos = self.env.data.qpos.copy()
                    stamp = self.get_clock().now()       # the moment of exposure
                    image = rgb_to_image(view.render(qpos), stamp.to_msg(), self.config.camera_frame_id,
                                         self.config.encoding)
                    self.camera_link.push(stamp.nanoseconds, image)
                    self._counters['camera_rendered'].count += 1
                    deadline += period
                    if deadline - time.monotonic() < -MAX_LAG_S:
                        deadline = time.monotonic()
                for image in self.camera_link.pop_due(self.get_clock().now().nanoseconds):
                    info.header = image.header
                    self.image_pub.publish(image)
                    self.info_pub.publish(info)
                    self._counters['camera'].count += 1
                # sleep until the next exposure or the next delivery, whichever comes first
                delay = deadline - time.monotonic()
                due = self.camera_link.next_due()
                if due is not None:
                    delay = min(delay, (due - self.get_clock().now().nanoseconds) * 1e-9)
                if delay > 0:
                    self._stop.wait(delay)
        finally:
            view.close()

    # -- publishing ----------------------------------------------------------------------------------------------
    def publish_joint_states(self) -> None:
        """Joint states, and the block's pose with the same stamp when the scene has a block."""
        with self._lock:
            q, v = self.env.joint_positions(), self.env.joint_velocities()
            block = self.env.block_pose() if self.block_pub else None
        stamp = self.get_clock().now().to_msg()
        msg = JointState(name=list(self.env.joint_names), position=q.tolist(), velocity=v.tolist())
        msg.header.stamp = stamp
        self.joint_pub.publish(msg)
        if block is not None:
            pose = PoseStamped()
            pose.header.stamp, pose.header.frame_id = stamp, 'world'
            p, o = pose.pose.position, pose.pose.orientation
            (p.x, p.y, p.z), (o.w, o.x, o.y, o.z) = block[:3].tolist(), block[3:].tolist()
            self.block_pub.publish(pose)
        self._counters['joint_states'].count += 1

    def camera_info(self) -> CameraInfo:
        """Pinhole intrinsics of the MuJoCo camera (vertical field of view, square pixels, no distortion)."""
        size = self.config.image_size
        fovy = math.radians(float(self.env.model.camera(self.config.camera).fovy[0]))
        f, c = (size / 2) / math.tan(fovy / 2), size / 2
        return CameraInfo(height=size, width=size, distortion_model='plumb_bob', d=[0.0] * 5,
                          k=[f, 0.0, c, 0.0, f, c, 0.0, 0.0, 1.0], r=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0],
                          p=[f, 0.0, c, 0.0, 0.0, f, c, 0.0, 0.0, 0.0, 1.0, 0.0])

    def publish_diagnostics(self) -> None:
        rates = {k: c.rate() for k, c in self._counters.items()}
        cfg = self.config
        # rendering is what the sim must keep up with; frames dropped on purpose (camera_drop_rate) are not slowness
        slow = rates['camera_rendered'] < 0.8 * cfg.camera_hz or rates['joint_states'] < 0.8 * cfg.joint_state_hz
        values = {'joint_states_hz': f'{rates["joint_states"]:.1f}', 'camera_hz': f'{rates["camera"]:.1f}',
                  'camera_rendered_hz': f'{rates["camera_rendered"]:.1f}',
                  'camera_frames_dropped': str(self.camera_link.dropped),
                  'camera_latency_ms_p50': f'{self.camera_link.latency_p50_ms():.1f}',
                  'realtime_overruns': str(self._overruns), 'rejected_trajectories': str(self._rejected),
                  'trajectory_active': str(self.arm.follower.active), 'controller': cfg.controller,
                  **self.arm.monitor.diagnostics()}
        publish_status(self, self.diag_pub, 'sim_arm: simulation',
                       DiagnosticStatus.WARN if slow else DiagnosticStatus.OK,
                       'streams below 80 % of their rates' if slow else 'ok', values, hardware_id='mujoco')

    def destroy_node(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2.0)
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(SimArmNode, 'sim_arm', args)


if __name__ == '__main__':
    sys.exit(main())
