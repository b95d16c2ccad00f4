"""MuJoCo table-top arm: the plain-Python environment behind the sim node, the demo, the tests and the benchmarks.

The arm is shaped like a ros2_control arm: named revolute joints with position limits, position actuators, and a
camera. An action is the joint-target delta for one control period (jepa_agent/data/dataset.py). With `controller:
joint_trajectory` (the default) a step does what a one-point trajectory does on joint_trajectory_controller: the
setpoint moves linearly from the measured position to the target over the period, however fast that is (targets are
only kept inside the joint limits); `rate_limited` clips the delta to the velocity limit and jumps the setpoint there.

Rendering uses an EGL context, which belongs to the thread that first calls `render()`; call it from one thread.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jepa_agent.config import bounded, check_ranges, load_section

os.environ.setdefault('MUJOCO_GL', 'egl')
import mujoco  # noqa: E402  (MUJOCO_GL must be set before import)

from jepa_agent.robot import RobotDescription  # noqa: E402
from jepa_agent.sim import push  # noqa: E402
from jepa_agent.sim.scene import AddedCamera, arm_actuators, load_scene, rigid_owner, scene_path  # noqa: E402

TASKS = ('reach', 'push', 'push_far')
CONTROLLERS = ('joint_trajectory', 'rate_limited')
#: setpoint updates (and joint-speed samples) per control period; joint_trajectory ramps the setpoint through them
SETPOINT_UPDATES = 10
#: m: a pose whose geoms overlap deeper than this is in collision (resting contact is not)
PENETRATION = 1e-3
#: random poses drawn for a reset or a reach goal before a working range is judged to lie in the scene
POSE_DRAWS = 100


@dataclass
class ArmEnvConfig:
    """Sim parameters (the `sim_arm` node's parameters share these names)."""

    # scene
    model_file: str = ''
    """MJCF (or a URDF MuJoCo reads) of the arm and its scene: a path or a shipped scene's name (arm.xml, arm4.xml);
    '' = the shipped table-top arm. The arm's joints are those driven by its position actuators, in actuator order."""
    ee_site: str = 'ee'
    """MJCF site whose position is the end effector (reach goals and success)."""
    block_joint: str = 'block'
    """Free joint of the pushable object; '' = none (a scene without a block has no push task)."""
    # camera
    image_size: int = bounded(64, ge=16, le=224)
    """Square camera image side in pixels."""
    camera: str = 'top'
    """MJCF camera name."""
    camera_pos: list[float] = dataclasses.field(default_factory=list)
    """[x, y, z] (m, world frame): add the camera `camera` here, for a scene without one (a URDF); [] = the scene's."""
    camera_target: list[float] = dataclasses.field(default_factory=list)
    """[x, y, z] (m) the added camera looks at (image up towards +z)."""
    camera_fovy: float = bounded(60.0, gt=0, lt=180)
    """Vertical field of view (degrees) of the added camera."""
    # control
    controller: str = 'joint_trajectory'
    """'joint_trajectory': like ros2_control's joint_trajectory_controller, no speed limiting (the default, what a
    real arm does); 'rate_limited': setpoints also move at most the velocity limit (hides unsafe commands)."""
    interpolate_from_desired_state: bool = True
    """The trajectory controller's parameter of that name (ros2_controllers' joint_trajectory_controller): a new
    trajectory starts from the setpoint the running one had reached, not from the measured position, so an arm that
    lags its setpoint is not pulled back by every new trajectory (the planner sends one per camera frame). Set it
    on your arm's controller too (docs/plug_in_your_arm.md); false = the controller's default. `step()` is one
    trajectory from the measured position either way."""
    control_hz: float = bounded(10.0, ge=1, le=100)
    """Rate of `step()`; one action spans 1/control_hz seconds."""
    max_joint_velocity: float = bounded(1.5, gt=0)
    """Joint velocity limit (rad/s) of every joint unless `velocity_limit` gives them one each; bounds the per-step
    action to the limit / control_hz."""
    # the arm's description, as every other node is given it (the `/**` section of a params file); [] = the scene's
    joint_names: list[str] = dataclasses.field(default_factory=list)
    """The arm's joints; when given, they must be the scene's actuated joints in actuator order ([] = the scene's)."""
    lower: list[float] = dataclasses.field(default_factory=list)
    """Lower position limits (rad), one per joint, inside the scene's joint ranges ([] = the scene's ranges): the
    arm's working range. Resets, reach goals and collect-sim's babbling stay inside it and the sim's controller
    refuses trajectories that leave it, as the other nodes are told."""
    upper: list[float] = dataclasses.field(default_factory=list)
    """Upper position limits (rad), as `lower`."""
    velocity_limit: list[float] = dataclasses.field(default_factory=list)
    """Velocity limits (rad/s), one per joint ([] = max_joint_velocity for every joint)."""
    # task
    task: str = 'reach'
    """Goal kind for sample_goal(): 'reach' (end-effector pose), 'push' or 'push_far' (block position)."""
    reach_tolerance: float = bounded(0.03, gt=0)
    """Success radius (m) of the end effector around the goal."""
    push_tolerance: float = bounded(0.04, gt=0)
    """Success radius (m) of the block around its goal."""

    def __post_init__(self):
        check_ranges(self)
        if self.controller not in CONTROLLERS:
            raise ValueError(f'controller must be one of {CONTROLLERS}, got {self.controller=}')
        if self.task not in TASKS:
            raise ValueError(f'task must be one of {TASKS}, got {self.task=}')
        if bool(self.camera_pos) != bool(self.camera_target) or \
                any(len(v) not in (0, 3) for v in (self.camera_pos, self.camera_target)):
            raise ValueError(f'camera_pos and camera_target go together, 3 values each; got {self.camera_pos=} '
                             f'{self.camera_target=}')


@dataclass
class Goal:
    """A goal view and the state it was rendered from (the state is for scoring only, never for the planner)."""

    image: np.ndarray       # (H, W, 3) uint8
    qpos: np.ndarray        # (n_joints,) arm joint positions
    ee_pos: np.ndarray      # (3,) end-effector xyz
    block_pos: np.ndarray   # (2,) block xy
    task: str
    demonstration: np.ndarray | None = None   # (T, J) env.step actions of the scripted push to it (push goals)


@dataclass
class Observation:
    """What a real arm would report: camera image and measured joint state (plus sim-only scoring state)."""

    image: np.ndarray       # (H, W, 3) uint8
    qpos: np.ndarray        # (n_joints,)
    qvel: np.ndarray        # (n_joints,)
    ee_pos: np.ndarray      # (3,)
    block_pos: np.ndarray   # (2,)
    time: float


class ArmEnv:
    """Deterministic MuJoCo arm with reset(seed) / step(action) / render() / sample_goal(seed)."""

    def __init__(self, config: ArmEnvConfig | None = None):
        self.config = config or ArmEnvConfig()
        self.model = self._load_scene()
        self.data = mujoco.MjData(self.model)
        self._scratch = mujoco.MjData(self.model)   # kinematics/rendering of arbitrary states
        self._actuators, jids = arm_actuators(self.model)
        self.joint_names = [self.model.joint(j).name for j in jids]
        self._qadr = np.array([self.model.jnt_qposadr[j] for j in jids])
        self._vadr = np.array([self.model.jnt_dofadr[j] for j in jids])
        self.lower, self.upper, self.velocity_limit = self._working_range(jids)
        self._link_bodies = [int(self.model.jnt_bodyid[j]) for j in jids]
        self._ee_site = self._named(mujoco.mjtObj.mjOBJ_SITE, self.config.ee_site, 'ee_site')
        self._ee_body = rigid_owner(self.model, int(self.model.site_bodyid[self._ee_site]))
        self._camera = self._named(mujoco.mjtObj.mjOBJ_CAMERA, self.config.camera, 'camera')
        block = self._named(mujoco.mjtObj.mjOBJ_JOINT, self.config.block_joint, 'block_joint') \
            if self.config.block_joint else None
        self._block_qadr = None if block is None else int(self.model.jnt_qposadr[block])
        self._block_body = None if block is None else int(self.model.jnt_bodyid[block])
        self._renderer: mujoco.Renderer | None = None
        self._substeps = max(1, round(1.0 / (self.config.control_hz * self.model.opt.timestep)))
        self.peak_speed_ratio = 0.0
        """Fastest joint speed seen during `step()` since the last reset, as a multiple of its velocity limit."""

    def _load_scene(self) -> mujoco.MjModel:
        """The scene, completed where it lacks what the configuration supplies (sim/scene.py)."""
        c = self.config
        camera = AddedCamera(c.camera, list(c.camera_pos), list(c.camera_target), c.camera_fovy) \
            if c.camera_pos else None
        ranges = dict(zip(c.joint_names, zip(c.lower, c.upper))) if c.joint_names and c.lower and c.upper else {}
        return load_scene(scene_path(c.model_file), camera, c.ee_site, ranges)

    def _working_range(self, jids: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(lower, upper, velocity_limit) of the arm: the configured description (checked as every node's is,
        `RobotDescription`) inside the scene's joint ranges; ValueError when it does not describe this scene's arm."""
        c = self.config
        if c.joint_names and list(c.joint_names) != self.joint_names:
            raise ValueError(f'joint_names {list(c.joint_names)} are not the scene\'s actuated joints in actuator '
                             f'order: {self.joint_names}')
        scene_lower, scene_upper = self.model.jnt_range[jids, 0], self.model.jnt_range[jids, 1]
        robot = RobotDescription(self.joint_names, c.lower or scene_lower.tolist(), c.upper or scene_upper.tolist(),
                                 c.velocity_limit or [c.max_joint_velocity] * len(jids))
        lower, upper = np.array(robot.lower), np.array(robot.upper)
        outside = (lower < scene_lower - 1e-9) | (upper > scene_upper + 1e-9)
        if outside.any():
            j = int(np.argmax(outside))
            raise ValueError(f'the limits of joint {self.joint_names[j]!r}, [{lower[j]:g}, {upper[j]:g}], must be a '
                             f'range inside the scene\'s [{scene_lower[j]:g}, {scene_upper[j]:g}]')
        return lower, upper, np.array(robot.velocity_limit)

    def _named(self, kind: mujoco.mjtObj, name: str, parameter: str) -> int:
        """Id of the MJCF element `name`, or a ValueError naming the parameter and what the scene has."""
        index = mujoco.mj_name2id(self.model, kind, name)
        if index < 0:
            count = {mujoco.mjtObj.mjOBJ_SITE: self.model.nsite, mujoco.mjtObj.mjOBJ_CAMERA: self.model.ncam,
                     mujoco.mjtObj.mjOBJ_JOINT: self.model.njnt}[kind]
            names = [mujoco.mj_id2name(self.model, kind, i) for i in range(count)]
            hint = {mujoco.mjtObj.mjOBJ_SITE: ' (a body, e.g. a URDF link, may be named instead: the site is put at '
                                              'its origin)',
                    mujoco.mjtObj.mjOBJ_CAMERA: ' (camera_pos and camera_target add one)'}.get(kind, '')
            raise ValueError(f'{parameter} {name!r} is not in the scene {scene_path(self.config.model_file)}; it '
                             f'has {names}{hint}')
        return index

    @property
    def has_block(self) -> bool:
        return self._block_qadr is not None

    # -- properties ------------------------------------------------------------------------------------------
    @property
    def robot(self) -> RobotDescription:
        """The arm's description (actuated joints in actuator order, their limits)."""
        return RobotDescription(list(self.joint_names), self.lower.tolist(), self.upper.tolist(),
                                self.velocity_limit.tolist())

    @property
    def n_joints(self) -> int:
        return len(self.joint_names)

    @property
    def control_dt(self) -> float:
        return self._substeps * self.model.opt.timestep

    @property
    def max_delta(self) -> np.ndarray:
        """Largest per-step joint change the velocity limit allows (rad)."""
        return self.velocity_limit * self.control_dt

    # -- state -----------------------------------------------------------------------------------------------
    def reset(self, seed: int | None = None, render: bool = True) -> Observation:
        """Random arm pose (inside 80 % of the limits) and a block placed clear of the arm, then settle.

        `render=False` skips the image, for callers that render in another thread (the sim node)."""
        rng = np.random.default_rng(seed)
        mujoco.mj_resetData(self.model, self.data)
        q = self._free_pose(rng, margin=0.8)
        self.data.qpos[self._qadr] = q
        if self.model.nkey:              # actuators that are not the arm (a gripper) hold the first keyframe's setpoint
            self.data.ctrl[:] = self.model.key_ctrl[0]
        self.data.ctrl[self._actuators] = q
        if self.has_block:
            self._place_block(rng, q)
        mujoco.mj_forward(self.model, self.data)
        self.advance(0.1)
        self.peak_speed_ratio = 0.0
        return self.get_observation(render=render)

    def _free_pose(self, rng: np.random.Generator, margin: float) -> np.ndarray:
        """Random joint positions (`random_joint_positions`) at which the arm is in no collision; ValueError if
        POSE_DRAWS draws find none (the working range lies in the floor, the table or the arm itself)."""
        for _ in range(POSE_DRAWS):
            q = self.random_joint_positions(rng, margin)
            if not self.collides(q):
                return q
        raise ValueError(f'none of {POSE_DRAWS} random poses within {margin:.0%} of the working range is free of '
                         'collisions: narrow the arm description\'s lower/upper limits')

    def collides(self, q: np.ndarray) -> bool:
        """Whether the arm at joint positions `q` (the rest of the scene as it is) penetrates anything but the block
        (placed clear of it): the floor, the table, its own links. Menagerie's UR5e, within the limits of a UR5e
        description, did in 38 of 300 reset poses, and physics threw it out of the floor at up to 4 times its
        velocity limit."""
        s = self._posed(q)
        mujoco.mj_collision(self.model, s)
        bodies = self.model.geom_bodyid
        return any(c.dist < -PENETRATION and self._block_body not in (bodies[c.geom1], bodies[c.geom2])
                   for c in s.contact[:s.ncon])

    def random_joint_positions(self, rng: np.random.Generator, margin: float = 0.9) -> np.ndarray:
        """Uniform joint positions within `margin` × the joint range (around its centre)."""
        centre, half = (self.upper + self.lower) / 2, (self.upper - self.lower) / 2
        return centre + rng.uniform(-margin, margin, self.n_joints) * half

    def _place_block(self, rng: np.random.Generator, q: np.ndarray) -> None:
        for _ in range(100):
            r, theta = rng.uniform(0.12, 0.28), rng.uniform(-np.pi, np.pi)
            xy = np.array([r * np.cos(theta), r * np.sin(theta)])
            if self.clearance(q, xy) > 0.06:
                break
        self.data.qpos[self._block_qadr:self._block_qadr + 7] = [xy[0], xy[1], 0.025, 1, 0, 0, 0]

    def clearance(self, q: np.ndarray, xy: np.ndarray) -> float:
        """Smallest distance (m) from point `xy` to the arm's link axes at joint positions `q`."""
        points = self._link_points(q)
        dists = []
        for a, b in zip(points[:-1], points[1:]):
            ab = b - a
            t = np.clip(np.dot(xy - a, ab) / max(np.dot(ab, ab), 1e-12), 0.0, 1.0)
            dists.append(np.linalg.norm(xy - (a + t * ab)))
        return float(min(dists))

    def _posed(self, q: np.ndarray) -> mujoco.MjData:
        """The scratch data with the arm at joint positions `q` (the rest of the scene as it is), kinematics done."""
        self._scratch.qpos[:] = self.data.qpos
        self._scratch.qpos[self._qadr] = q
        mujoco.mj_kinematics(self.model, self._scratch)
        return self._scratch

    def _link_points(self, q: np.ndarray) -> np.ndarray:
        s = self._posed(q)
        pts = [s.xpos[b][:2] for b in self._link_bodies] + [s.site_xpos[self._ee_site][:2]]
        return np.array(pts)

    def forward_kinematics(self, q: np.ndarray) -> np.ndarray:
        """End-effector position (xyz) for arm joint positions `q`."""
        return self._posed(q).site_xpos[self._ee_site].copy()

    def ee_in_view(self, q: np.ndarray) -> bool:
        """Whether the camera sees the end effector at arm joint positions `q` (the rest of the scene as it is): the
        end-effector site lies in the image, and the first surface on the line of sight to it belongs to the site's
        own body. A reach goal image that hides the end effector (under the table, behind a link, out of frame) does
        not show where it should go: on arm4's oblique camera 51 of 250 random poses did."""
        s, camera = self._posed(q), self._camera
        mujoco.mj_camlight(self.model, s)
        eye = s.cam_xpos[camera].copy()
        sight = s.site_xpos[self._ee_site] - eye
        distance = float(np.linalg.norm(sight))
        x, y, z = s.cam_xmat[camera].reshape(3, 3).T @ sight                # camera frame: it looks along -z
        half_width = np.tan(np.deg2rad(self.model.cam_fovy[camera]) / 2) * -z      # square images
        if z >= 0 or max(abs(x), abs(y)) > half_width:
            return False
        geom = np.full(1, -1, np.int32)
        hit = mujoco.mj_ray(self.model, s, eye, sight / distance, None, True, -1, geom)
        return hit < 0 or hit >= distance or \
            rigid_owner(self.model, int(self.model.geom_bodyid[geom[0]])) == self._ee_body

    def ee_jacobian(self) -> np.ndarray:
        """(3, J) end-effector position Jacobian with respect to the arm joints, at the current state."""
        jacobian = np.zeros((3, self.model.nv))
        mujoco.mj_jacSite(self.model, self.data, jacobian, None, self._ee_site)
        return jacobian[:, self._vadr]

    def joint_positions(self) -> np.ndarray:
        return self.data.qpos[self._qadr].copy()

    def joint_velocities(self) -> np.ndarray:
        return self.data.qvel[self._vadr].copy()

    def ee_pos(self) -> np.ndarray:
        """End-effector position (xyz, m)."""
        return self.data.site_xpos[self._ee_site].copy()

    def block_pos(self) -> np.ndarray:
        """Block position on the table (xy, m); NaN without a block."""
        if not self.has_block:
            return np.full(2, np.nan)
        return self.data.qpos[self._block_qadr:self._block_qadr + 2].copy()

    def block_pose(self) -> np.ndarray:
        """Block position (xyz, m) and orientation (quaternion wxyz): its free joint's coordinates."""
        return self.data.qpos[self._block_qadr:self._block_qadr + 7].copy()

    def mirror(self, q: np.ndarray, block_xy: np.ndarray | None = None) -> None:
        """Put the arm at joint positions `q` (and the block at `block_xy`) without simulating, for kinematics of a
        live arm (end effector, Jacobian); the block keeps its height and orientation."""
        self.data.qpos[self._qadr] = q
        if block_xy is not None and self.has_block:
            self.data.qpos[self._block_qadr:self._block_qadr + 2] = block_xy
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)

    def get_state(self) -> np.ndarray:
        """Full physics state (qpos, qvel, ctrl, time) for save/restore, e.g. simulator-in-the-loop planning."""
        return np.concatenate([self.data.qpos, self.data.qvel, self.data.ctrl, [self.data.time]])

    def set_state(self, state: np.ndarray) -> None:
        nq, nv, nu = self.model.nq, self.model.nv, self.model.nu
        self.data.qpos[:] = state[:nq]
        self.data.qvel[:] = state[nq:nq + nv]
        self.data.ctrl[:] = state[nq + nv:nq + nv + nu]
        self.data.time = state[-1]
        mujoco.mj_forward(self.model, self.data)

    # -- acting ----------------------------------------------------------------------------------------------
    def clip_targets(self, targets: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
        """Joint targets inside the limits and, relative to `reference`, within one control period's motion."""
        targets = np.asarray(targets, dtype=np.float64)
        if reference is not None:
            targets = np.clip(targets, reference - self.max_delta, reference + self.max_delta)
        return np.clip(targets, self.lower, self.upper)

    def set_joint_targets(self, targets: np.ndarray) -> None:
        """Position-actuator setpoints (clipped to the joint limits); non-finite targets are refused."""
        targets = np.asarray(targets, dtype=np.float64)
        if targets.shape != (self.n_joints,) or not np.all(np.isfinite(targets)):
            raise ValueError(f'joint targets must be {self.n_joints} finite values, got {targets!r}')
        self.data.ctrl[self._actuators] = self.clip_targets(targets)

    def joint_targets(self) -> np.ndarray:
        return self.data.ctrl[self._actuators].copy()

    def advance(self, seconds: float) -> None:
        """Simulate `seconds` of physics with the current setpoints."""
        mujoco.mj_step(self.model, self.data, nstep=max(1, round(seconds / self.model.opt.timestep)))

    def step(self, action: np.ndarray, render: bool = True) -> Observation:
        """Apply one action (joint-target delta from the measured position) for one control period."""
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (self.n_joints,) or not np.all(np.isfinite(action)):
            raise ValueError(f'action must be {self.n_joints} finite values, got {action!r}')
        q = self.joint_positions()
        ramp = self.config.controller == 'joint_trajectory'
        target = self.clip_targets(q + action, reference=None if ramp else q)
        updates, done = min(SETPOINT_UPDATES, self._substeps), 0
        for k in range(1, updates + 1):
            self.data.ctrl[self._actuators] = q + (target - q) * (k / updates) if ramp else target
            steps = round(k * self._substeps / updates) - done
            mujoco.mj_step(self.model, self.data, nstep=steps)
            done += steps
            self.peak_speed_ratio = max(self.peak_speed_ratio,
                                        float(np.max(np.abs(self.joint_velocities()) / self.velocity_limit)))
        return self.get_observation(render=render)

    def get_observation(self, render: bool = True) -> Observation:
        image = self.render() if render else np.zeros((0, 0, 3), np.uint8)
        return Observation(image, self.joint_positions(), self.joint_velocities(), self.ee_pos(),
                           self.block_pos(), float(self.data.time))

    # -- rendering -------------------------------------------------------------------------------------------
    def render(self, qpos: np.ndarray | None = None) -> np.ndarray:
        """RGB image (H, W, 3) uint8 of the current state, or of full MuJoCo `qpos` if given."""
        if self._renderer is None:
            size = self.config.image_size
            self._renderer = mujoco.Renderer(self.model, size, size)
        self._scratch.qpos[:] = self.data.qpos if qpos is None else qpos
        mujoco.mj_kinematics(self.model, self._scratch)
        mujoco.mj_camlight(self.model, self._scratch)
        self._renderer.update_scene(self._scratch, camera=self._camera)
        return self._renderer.render().copy()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # -- goals -----------------------------------------------------------------------------------------------
    def check_task(self, task: str) -> str:
        """`task`, if this scene can have its goals; else ValueError saying why (push needs a block)."""
        if task not in TASKS:
            raise ValueError(f'task must be one of {TASKS}, got {task!r}')
        if task != 'reach' and not self.has_block:
            raise ValueError(f'{task} needs a block: the scene has no free joint {self.config.block_joint!r}')
        return task

    def sample_goal(self, seed: int, task: str | None = None) -> Goal:
        """A goal drawn from `seed`: reach, an arm pose clear of the block, in no collision (`collides`), with its
        end effector in view (`ee_in_view`); push(_far), a scripted push's end state."""
        task = self.check_task(task or self.config.task)
        rng = np.random.default_rng([seed, 0x60A1])   # goal stream, disjoint from reset()/explorer seeds
        if task != 'reach':
            return self._push_goal(rng, seed, task)
        for _ in range(POSE_DRAWS):
            q = self.random_joint_positions(rng, margin=0.9)
            if (not self.has_block or self.clearance(q, self.block_pos()) > 0.05) and self.ee_in_view(q) \
                    and not self.collides(q):
                break
        qpos = self.data.qpos.copy()
        qpos[self._qadr] = q                                          # the block stays where it is
        return Goal(self.render(qpos), q, self.forward_kinematics(q), self.block_pos(), task)

    def _push_goal(self, rng: np.random.Generator, seed: int, task: str) -> Goal:
        """Where a scripted push (sim/push.py) from the current state leaves arm and block; ValueError if none."""
        start, actions = self.get_state(), push.SCRIPTS[task](self, rng)
        if actions is None:
            raise ValueError(f'seed {seed}: no scripted {task} from this start state (sim/push.py)')
        for action in actions:
            self.step(action, render=False)
        goal = Goal(self.render(), self.joint_positions(), self.ee_pos(), self.block_pos(), task, actions)
        self.set_state(start)
        return goal

    def distances(self, goal: Goal) -> dict[str, float]:
        """End-effector and block distances (m) to the goal state."""
        return {'ee': float(np.linalg.norm(self.ee_pos() - goal.ee_pos)),
                'block': float(np.linalg.norm(self.block_pos() - goal.block_pos))}

    def success(self, goal: Goal) -> bool:
        d = self.distances(goal)
        if goal.task == 'reach':
            return d['ee'] <= self.config.reach_tolerance
        return d['block'] <= self.config.push_tolerance


def scene_params(path: str | Path | None) -> dict:
    """The ArmEnvConfig parameters (scene, camera, controller, task) of the sim_arm section of a params file in the
    nodes' layout; {} without a file or section. The section's other (node-only) parameters are ignored."""
    if path is None:
        return {}
    names = {f.name for f in dataclasses.fields(ArmEnvConfig)}
    return {k: v for k, v in load_section(path, 'sim_arm', required=False).items() if k in names}


def make_env(**overrides) -> ArmEnv:
    """ArmEnv from keyword overrides of ArmEnvConfig (validated)."""
    return ArmEnv(dataclasses.replace(ArmEnvConfig(), **overrides))
