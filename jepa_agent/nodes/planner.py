"""planner: the agent loop (`jepa_agent.planning.agent`) as a node: camera + joint states in, arm commands out.

    ros2 run jepa_agent planner --ros-args --params-file config/planner.yaml -p goal_image_path:=goal.png
    python -m jepa_agent.nodes.planner --ros-args -p checkpoint:=runs/reach
    ros2 run jepa_agent planner --ros-args -r camera/image_raw:=/wrist_camera/image_raw \\
        -r arm_controller/joint_trajectory:=/joint_trajectory_controller/joint_trajectory
    ros2 service call /planner/set_goal_from_current_view std_srvs/srv/Trigger     # the goal: what the camera sees

This node only moves messages and owns parameters; what to command, and when to hold, is the agent's (the same object
`eval-planner` runs). Plans run in a dedicated thread, one per fresh camera frame (at most `rate_hz`); after each
command the thread searches ahead for the next frame (`cem.anticipate`), stopping early if it arrives. The agent plans
from where the arm will be when the command takes effect and sends each plan's points on the plan's own timeline,
through the command gate with the newest joint state (`jepa_agent.command_gate`): a command is refused when joint
states or camera frames are stale, the planner is disabled or anything is non-finite, and otherwise re-timed so that
no joint exceeds its velocity limit. With no goal, a refused command, or no usable plan, nothing new is published and
the arm finishes the last published trajectory (at most `horizon` control periods ahead). Once the goal is reached
(the agent's deadband, `hold_ratio`) the node commands the arm to stop and reports `at_goal` on /diagnostics.

A new checkpoint announced on jepa_agent/model_updated is loaded in the background and swapped in between two plans:
control never stops. `~/debug_image` shows what the planner does (current view | goal | cost over the last seconds)
in rqt_image_view or Foxglove.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import SetParametersResult
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from jepa_agent.command_gate import CommandGate, CommandGateConfig
from jepa_agent.config import ConfigError, bounded, check_ranges
from jepa_agent.data.episodes import DatasetMeta
from jepa_agent.data.messages import MessageError, image_to_rgb, read_image_file, truncate
from jepa_agent.data.stream import check_not_flat, check_not_future, stamp_seconds
from jepa_agent.model.checkpoint import CheckpointError, load_checkpoint
from jepa_agent.model.devices import check_device, resolve_device
from jepa_agent.planning.agent import Agent, AgentConfig, Command, Hold
from jepa_agent.planning.cem import CEMConfig
from jepa_agent.planning.constraints import JointLimits
from jepa_agent.planning.debug_view import DebugView
from jepa_agent.planning.mpc import LatentMPC
from jepa_agent.planning.plan_stats import PlanStats
from jepa_agent.resources import model_path
from jepa_agent.robot import RobotDescription
from jepa_agent.ros import topics
from jepa_agent.ros.conversions import cv_bridge_decoder, make_trajectory, rgb_to_image, timed_trajectory
from jepa_agent.ros.diagnostics import publish_status
from jepa_agent.ros.freshness import NewestJointState, message_age, now_s, stamp_age_ms
from jepa_agent.ros.managed import ManagedNode
from jepa_agent.ros.params import declare_config
from jepa_agent.ros.qos import LATCHED, RELIABLE, SENSOR
from jepa_agent.ros.rejections import InputRejections
from jepa_agent.ros.run import run_node

@dataclass
class PlannerNodeConfig:
    """Planner node parameters (CEM search parameters are `cem.*`, joints and limits as in the explorer)."""

    # model and goal
    checkpoint: str = ''
    """World-model checkpoint directory; '' = the shipped models/reach_64px."""
    goal_image_path: str = ''
    """Image file (png/jpg) to use as the goal at start-up or when this parameter is set."""
    device: str = 'cpu'
    """Torch device for inference: 'auto' (CUDA if available, else CPU), 'cpu', 'cuda' or 'cuda:N'."""
    threads: int = bounded(1, ge=0)
    """CPU threads for inference (torch.set_num_threads); 0 = torch's default. One avoids OpenMP spinning
    against the sim's render thread and other processes on small CPUs."""
    # control
    enabled: bool = True
    """False = publish nothing (settable at run time; checked right before every command is published)."""
    rate_hz: float = bounded(30.0, gt=0, le=100)
    """Largest replanning rate. Plans are made on fresh camera frames, so below this cap the camera sets the pace;
    a cap at the camera's rate would hold back every frame that arrives early (jitter) until the period is up."""

    def __post_init__(self):
        check_ranges(self)
        check_device(self.device)


class PlannerNode(ManagedNode):
    """The agent loop as a managed node: configure loads the model, activate lets it command the arm."""

    def __init__(self):
        super().__init__('planner')
        self.config = declare_config(self, PlannerNodeConfig, dynamic=('enabled', 'goal_image_path'))
        self.cem_config = declare_config(self, CEMConfig, prefix='cem.')
        self.robot = declare_config(self, RobotDescription)
        self.agent_config = declare_config(self, AgentConfig)
        self.gate_config = declare_config(self, CommandGateConfig, 'command_gate.')
        self.enabled = self.config.enabled
        self.rejections = InputRejections(self.get_logger())
        self.decoder = cv_bridge_decoder()
        self.joint_state = NewestJointState(self.robot.joint_names, self.robot.lower, self.robot.upper,
                                            self.get_clock())
        self.add_on_set_parameters_callback(self.on_set_parameters)
        self._thread: threading.Thread | None = None

    def configure(self) -> None:
        """Load the model, build the agent, subscribe and start the planning thread."""
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        self.checkpoint = self.config.checkpoint or str(model_path('reach_64px'))
        model, trained_on = self._load_model(self.checkpoint)
        self.limits = JointLimits.of(self.robot, 1.0 / trained_on.rate_hz)
        gate = CommandGate(self.robot.lower, self.robot.upper, self.robot.velocity_limit,
                           self.agent_config.stale_timeout_s, self.gate_config)
        self.agent = Agent(LatentMPC(model, self.limits, self.cem_config), self.limits, gate, self.agent_config,
                           self.cem_config.horizon)

        self._lock = threading.Lock()            # guards the latest inputs and the pending goal/model
        self._image: tuple[np.ndarray, object, float] | None = None      # (rgb, header, receipt time)
        self._frames: list[tuple] = []           # (rgb, stamp s, joint positions or None) not yet given the agent
        self._input_fault = ''                   # why the latest camera/joint message was unusable
        self._goal_image: np.ndarray | None = None
        self._pending_goal: np.ndarray | None = None
        self._pending_model: tuple[LatentMPC, str] | None = None
        self._new_frame = threading.Event()
        self._stop = threading.Event()
        self._loader: threading.Thread | None = None
        self.state = 'idle: no goal'
        self.stats = PlanStats()
        self.debug_view = DebugView()

        cfg = self.config
        self.command_pub = self.create_command_publisher(JointTrajectory, topics.TRAJECTORY, RELIABLE)
        self.plan_pub = self.create_publisher(JointTrajectory, topics.PLAN, RELIABLE)
        self.diag_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, RELIABLE)
        self.debug_pub = self.create_publisher(Image, topics.DEBUG_IMAGE, SENSOR)
        inputs = [self.create_subscription(Image, topics.IMAGE, self.on_image, SENSOR),
                  self.create_subscription(JointState, topics.JOINT_STATES, self.on_joint_states, SENSOR)]
        self.goal_sub = self.create_subscription(Image, topics.GOAL_IMAGE, self.on_goal_image, LATCHED)
        self.create_subscription(String, topics.MODEL_UPDATED, self.on_model_updated, LATCHED)
        self.create_service(Trigger, '~/set_goal_from_current_view', self.on_set_goal_from_current_view)
        self.create_timer(1.0, self.publish_diagnostics)
        if cfg.goal_image_path:
            self._set_goal_from_file(cfg.goal_image_path)
        self._thread = threading.Thread(target=self._planning_loop, name='planning', daemon=True)
        self._thread.start()
        self.get_logger().info(f'planning with {model} from {self.checkpoint} on {cfg.device}, joints '
                               f'{self.robot.joint_names}, dt {self.limits.dt:.3f} s: from '
                               f'{", ".join(sub.topic_name for sub in inputs)} to {self.command_pub.topic_name}, '
                               f'goals on {self.goal_sub.topic_name}')

    # -- model ---------------------------------------------------------------------------------------------
    def _load_model(self, path: str, period: float | None = None) -> tuple[torch.nn.Module, DatasetMeta]:
        """The model and the description of the data it was trained on; ConfigError unless it acts on this arm's
        joints and, when `period` is given (a model swapped in), steps that many seconds like the running one."""
        try:
            model, metadata = load_checkpoint(path, resolve_device(self.config.device))
            trained_on = DatasetMeta.from_dict(metadata)
            self.robot.check_matches(trained_on.robot, f'checkpoint {path}', model.config.action_dim)
        except (CheckpointError, ValueError) as exc:
            raise ConfigError(f'cannot load the world model: {exc}') from exc
        if period is not None and abs(1.0 / trained_on.rate_hz - period) > 1e-9:
            raise ConfigError(f'checkpoint {path} steps at {trained_on.rate_hz} Hz, the running model at {1/period:g}')
        return model, trained_on

    def on_model_updated(self, msg: String) -> None:
        if self._loader is not None and self._loader.is_alive():
            self.rejections.reject('model_update', f'still loading a model; ignoring {msg.data!r}')
            return
        self._loader = threading.Thread(target=self._load_in_background, args=(msg.data,), daemon=True)
        self._loader.start()

    def _load_in_background(self, path: str) -> None:
        """Load off the planning thread; the swap happens between two plans, so control never pauses."""
        try:
            model, _ = self._load_model(path, self.limits.dt)
            policy = LatentMPC(model, self.limits, self.cem_config)         # (prepares cem.runtime here)
        except Exception as exc:  # noqa: BLE001  any unusable announcement (bad path, corrupt file) keeps the model
            self.rejections.reject('model_update', f'new model {path!r} not used, keeping {self.checkpoint}: {exc}')
            return
        with self._lock:
            self._pending_model = (policy, path)
        self._new_frame.set()

    # -- inputs --------------------------------------------------------------------------------------------
    def on_image(self, msg: Image) -> None:
        try:
            rgb = self._usable_image(msg)
            check_not_future(stamp_seconds(msg.header, 0.0), now_s(self.get_clock()), 'image')
        except MessageError as exc:
            self._fault('image', exc)
            with self._lock:
                self._image = None
            return
        joints = self.joint_state.reading()
        frame = (rgb, stamp_seconds(msg.header, now_s(self.get_clock())), joints and joints.positions)
        with self._lock:
            self._image = (rgb, msg.header, time.monotonic())
            self._frames = self._frames[-7:] + [frame]
        self._new_frame.set()

    def on_joint_states(self, msg: JointState) -> None:
        try:
            self.joint_state.update(msg)
        except MessageError as exc:
            self._fault('joint_state', exc)

    def _camera_age(self, image: tuple) -> float:
        """Seconds since the frame arrived or was stamped, whichever is longer ago."""
        return message_age(image[2], stamp_seconds(image[1], 0.0), self.get_clock())

    def _usable_image(self, msg: Image) -> np.ndarray:
        """RGB of a camera or goal image; MessageError if it breaks the Image contract or is one flat colour."""
        return check_not_flat(image_to_rgb(msg, decoder=self.decoder))

    def _fault(self, kind: str, exc: Exception) -> None:
        """An unusable input replaces the last good one (so planning holds) and is reported, throttled."""
        self._input_fault = truncate(f'unusable {kind}: {exc}')
        self.rejections.reject(kind, f'{exc}; holding')

    # -- goal ----------------------------------------------------------------------------------------------
    def on_goal_image(self, msg: Image) -> None:
        try:
            rgb = self._usable_image(msg)
        except MessageError as exc:
            self.rejections.reject('goal_image', exc)
            return
        self._request_goal(rgb, f'goal image from {self.goal_sub.topic_name} '
                                f'({msg.encoding}, {msg.width}x{msg.height})')

    def on_set_goal_from_current_view(self, request, response):
        with self._lock:
            image = self._image
        if image is None or self._camera_age(image) > self.agent_config.stale_timeout_s:
            response.success, response.message = False, 'no fresh camera image to use as the goal'
        else:
            self._request_goal(image[0], 'goal set from the current view')
            response.success, response.message = True, 'goal set from the current view'
        return response

    def _set_goal_from_file(self, path: str) -> bool:
        try:
            self._request_goal(check_not_flat(read_image_file(path)), f'goal image from {truncate(path)}')
        except ValueError as exc:
            self.rejections.reject('goal_image', exc)
            return False
        return True

    def _request_goal(self, rgb: np.ndarray, what: str) -> None:
        size = self.agent.policy.model.config.image_size
        note = f' (resized {rgb.shape[1]}x{rgb.shape[0]} -> {size}x{size})' if rgb.shape[:2] != (size, size) else ''
        self.get_logger().info(f'{what}{note}')
        with self._lock:
            self._pending_goal = rgb
        self._new_frame.set()

    def on_set_parameters(self, params) -> SetParametersResult:
        for p in params:
            if p.name == 'enabled':
                if not isinstance(p.value, bool):
                    return SetParametersResult(successful=False, reason='enabled must be a bool')
                self.enabled = p.value
            elif p.name == 'goal_image_path' and p.value:
                if self._thread is None:
                    return SetParametersResult(successful=False, reason='not configured: no model to plan with')
                if not self._set_goal_from_file(str(p.value)):
                    return SetParametersResult(successful=False, reason=f'cannot read {truncate(p.value)}')
        return SetParametersResult(successful=True)

    # -- planning thread -----------------------------------------------------------------------------------
    def _planning_loop(self) -> None:
        period = 1.0 / self.config.rate_hz
        last = 0.0
        while not self._stop.is_set():
            if not self._new_frame.wait(timeout=0.2):
                self._hold_if_stale()
                continue
            if self._stop.is_set():
                break
            self._new_frame.clear()
            self._apply_pending()
            wait = last + period - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                break
            last = time.monotonic()
            try:
                self._plan_once()
            except Exception as exc:  # noqa: BLE001  the loop must survive anything a model does; we hold
                self._hold(f'planning failed: {exc!r}')
                self.get_logger().error(f'planning failed: {exc!r}', throttle_duration_sec=2.0)

    def _apply_pending(self) -> None:
        with self._lock:
            pending_model, self._pending_model = self._pending_model, None
            pending_goal, self._pending_goal = self._pending_goal, None
        if pending_model is not None:
            self.agent.policy, path = pending_model
            self.checkpoint = path
            pending_goal = pending_goal if pending_goal is not None else self._goal_image   # re-encode the goal
            self.get_logger().info(f'now planning with the model from {path}')
        if pending_goal is not None:
            try:
                self.agent.set_goal(pending_goal)     # a new episode: earlier frames and commands are forgotten
                self._goal_image = pending_goal
                self.debug_view.clear()
            except ValueError as exc:
                self.agent.clear_goal()
                self._goal_image = None
                self.get_logger().warning(f'goal rejected: {exc}')

    def _plan_once(self) -> None:
        if not (self.enabled and self.active):
            self.state = 'disabled' if self.active else 'inactive'
            return
        with self._lock:
            image, fault, frames, self._frames = self._image, self._input_fault, self._frames, []
        for rgb, stamp, q in frames:
            self.agent.observe(rgb, stamp, q)
        if image is None:                        # the newest camera message was unusable (or none came yet)
            return self._hold(fault or 'waiting for camera and joint states')
        asked, planned_from = time.monotonic(), image[1].stamp        # the newest frame: the one planned from
        plan = self.agent.plan(now_s(self.get_clock()), self.joint_state.reading())
        if isinstance(plan, Hold):
            return self._hold(fault if fault and plan.reason.startswith(('stale', 'waiting')) else plan.reason)
        with self._lock:
            image = self._image
        camera_age = np.inf if image is None else self._camera_age(image)
        command = self.agent.command(plan, now_s(self.get_clock()), self.joint_state.reading(),
                                     enabled=self.enabled and self.active, camera_age_s=camera_age)
        if isinstance(command, Hold):
            return self._hold(command.reason)
        self._publish(command, planned_from, asked)
        started = time.monotonic()        # search ahead for the next frame (cem.anticipate); it stops if one arrives
        if self.agent.prepare(now_s(self.get_clock()), self.joint_state.reading(), stop=self._new_frame.is_set):
            self.stats.prepared(time.monotonic() - started)

    def _publish(self, command: Command, stamp, asked: float) -> None:
        names = self.robot.joint_names
        self.command_pub.publish(timed_trajectory(names, command.positions, command.times))
        self.plan_pub.publish(make_trajectory(names, command.plan.targets, self.agent.limits.dt, stamp=stamp))
        done = time.monotonic()
        self.state = 'at goal' if self.agent.at_goal else 'planning'
        self.stats.planned(asked, done, stamp_age_ms(stamp, self.get_clock()), command.plan.cost, self.agent.at_goal)
        self.debug_view.add(done, command.plan.cost, self.agent.at_goal)
        if self.debug_pub.get_subscription_count() and self._goal_image is not None:
            with self._lock:
                current = self._image[0] if self._image is not None else None
            if current is not None:
                self.debug_pub.publish(rgb_to_image(self.debug_view.render(current, self._goal_image, done),
                                                    stamp=stamp))

    def _hold(self, reason: str) -> None:
        """Publish nothing new: the controller finishes the last published trajectory (at most `horizon` periods)
        and stays at its end."""
        if self.state != f'holding: {reason}' and not reason.startswith('no goal'):
            self.get_logger().warning(f'holding position: {reason}', throttle_duration_sec=2.0)
        self.state = 'idle: no goal' if reason == 'no goal' else f'holding: {reason}'
        self.stats.holding()

    def _hold_if_stale(self) -> None:
        with self._lock:
            image = self._image
        if self.state in ('planning', 'at goal') and (
                image is None or self._camera_age(image) > self.agent_config.stale_timeout_s):
            self._hold('stale camera or joint states')

    # -- diagnostics ---------------------------------------------------------------------------------------
    def publish_diagnostics(self) -> None:
        calm = ('planning', 'at goal', 'idle: no goal', 'disabled', 'inactive')
        level = DiagnosticStatus.OK if self.state in calm else DiagnosticStatus.WARN
        values = {'state': self.state, **self.stats.values(time.monotonic()), 'checkpoint': self.checkpoint,
                  'has_goal': str(self.agent.has_goal), 'enabled': str(self.enabled), 'active': str(self.active),
                  **self.rejections.diagnostics()}
        publish_status(self, self.diag_pub, 'planner', level, self.state, values, hardware_id='jepa_agent')

    def release(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._new_frame.set()
            self._thread.join(timeout=5)
            self._thread = None




def main(args: list[str] | None = None) -> int:
    return run_node(PlannerNode, 'planner', args)


if __name__ == '__main__':
    raise SystemExit(main())
