"""The MuJoCo scene of the sim arm: which file, what it must hold, and what the sim adds where a robot description
(a URDF) lacks it.

An MJCF scene is used as written. A URDF describes links, joints and limits only, so the sim completes it from the
sim_arm parameters: a camera placed by `camera_pos` / `camera_target`, a critically damped position servo on every
joint when the file has no actuators, the end-effector site on the link `ee_site` names, and the joint ranges the
arm description gives to joints that have none (URDF `continuous`); a URDF without lights gets one from above.
Fixed links (`tool0`) are kept, not merged into their parents, so that they can be named; a link never collides
with its parent (URDF collision meshes overlap at the joint between them, and MuJoCo does not exclude a link whose
parent is welded to the world); a mesh given as a `package://` path, or as an absolute path that does not exist
here, is looked up by its file name beside the URDF.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault('MUJOCO_GL', 'egl')
import mujoco  # noqa: E402  (MUJOCO_GL must be set before import)

ASSET = Path(__file__).parent / 'assets' / 'arm.xml'
#: bandwidth (Hz) of the position servos added to a scene without actuators
SERVO_BANDWIDTH_HZ = 10.0
#: the joints an arm is made of
ARM_JOINT_TYPES = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))


@dataclass
class AddedCamera:
    """A camera the sim adds to the scene, at `pos` looking at `target` (world frame, m), image up towards +z."""

    name: str
    pos: list[float]
    target: list[float]
    fovy: float = 60.0


def scene_path(model_file: str) -> Path:
    """The scene file `model_file` names: a path, or the name of a shipped scene (`sim/assets/`: arm.xml, the
    default; arm4.xml, the second example arm)."""
    if not model_file:
        return ASSET
    path = Path(model_file).expanduser()
    shipped = ASSET.parent / model_file
    return shipped if not path.exists() and shipped.is_file() else path


def load_scene(path: str | Path, camera: AddedCamera | None = None, ee_site: str = '',
               ranges: dict[str, tuple[float, float]] | None = None) -> mujoco.MjModel:
    """The MuJoCo model at `path` (MJCF, or URDF), completed (see the module docstring): `camera` added when given,
    servos when it has no actuators, a site `ee_site` on the body of that name when it has no such site, and
    `ranges` ({joint: (lower, upper)}) on joints without a range. ValueError saying why it cannot be loaded."""
    path = Path(path)
    try:
        spec = mujoco.MjSpec.from_file(str(path))
        if path.suffix.lower() == '.urdf':
            spec.compiler.fusestatic = False
            for mesh in spec.meshes:                    # package:// and other machines' paths: the file name
                if mesh.file.startswith('package://') or (Path(mesh.file).is_absolute() and
                                                          not Path(mesh.file).exists()):
                    mesh.file = Path(mesh.file).name
            for body in spec.bodies:                    # a URDF's adjacent links overlap at their joint
                parent = body.parent
                if parent is not None and parent.name != 'world':
                    spec.add_exclude(bodyname1=parent.name, bodyname2=body.name)
            if not spec.lights:
                spec.worldbody.add_light(pos=[0, 0, 3], dir=[0, 0, -1], diffuse=[0.8] * 3, castshadow=False)
        if camera is not None:
            _add_camera(spec, camera)
        if ee_site and spec.site(ee_site) is None and spec.body(ee_site) is not None:
            spec.body(ee_site).add_site(name=ee_site)
        for name, (lower, upper) in (ranges or {}).items():
            joint = spec.joint(name)
            if joint is not None and not _limited(spec, joint):
                joint.range, joint.limited = [lower, upper], mujoco.mjtLimited.mjLIMITED_TRUE
        if not spec.actuators:
            _add_servos(spec)
        return spec.compile()
    except (ValueError, OSError) as exc:
        raise ValueError(f'cannot load the scene {path}: {exc}') from exc


def _limited(spec: mujoco.MjSpec, joint) -> bool:
    limited = joint.limited
    if limited == mujoco.mjtLimited.mjLIMITED_AUTO:
        return bool(spec.compiler.autolimits and joint.range[0] < joint.range[1])
    return limited == mujoco.mjtLimited.mjLIMITED_TRUE


def _add_camera(spec: mujoco.MjSpec, camera: AddedCamera) -> None:
    pos, target = np.asarray(camera.pos, float), np.asarray(camera.target, float)
    forward = target - pos
    right = np.cross(forward, [0.0, 0.0, 1.0])
    if np.linalg.norm(forward) < 1e-9 or np.linalg.norm(right) < 1e-9 * np.linalg.norm(forward):
        raise ValueError(f'camera_pos {camera.pos} must lie away from camera_target {camera.target}, not straight '
                         'above or below it')
    forward, right = forward / np.linalg.norm(forward), right / np.linalg.norm(right)
    up = np.cross(right, forward)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.column_stack([right, up, -forward]).ravel())   # a camera looks along its -z
    spec.worldbody.add_camera(name=camera.name, pos=pos, quat=quat, fovy=camera.fovy)


def _add_servos(spec: mujoco.MjSpec) -> None:
    """A position servo on every hinge and slide joint, critically damped at SERVO_BANDWIDTH_HZ for the joint's
    own inertia at the middle of its range (what a tuned joint controller does, gravity sag aside). The scene then
    integrates with `implicitfast`, as Menagerie's arms do: under MuJoCo's default (Euler) servos this stiff on
    light, coupled wrist links oscillate at half the physics rate (±1 rad/s at rest on a UR5e's wrists)."""
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    model = spec.compile()
    joints = [j for j in range(model.njnt) if int(model.jnt_type[j]) in ARM_JOINT_TYPES]
    data = mujoco.MjData(model)
    for j in joints:
        data.qpos[model.jnt_qposadr[j]] = model.jnt_range[j].mean() if model.jnt_limited[j] else 0.0
    mujoco.mj_forward(model, data)
    inertia = np.zeros((model.nv, model.nv))
    mujoco.mj_fullM(model, data, inertia)
    omega = 2 * np.pi * SERVO_BANDWIDTH_HZ
    for j in joints:
        mass = float(inertia[model.jnt_dofadr[j], model.jnt_dofadr[j]]) + float(model.dof_armature[model.jnt_dofadr[j]])
        kp = mass * omega ** 2
        actuator = spec.add_actuator(name=model.joint(j).name, target=model.joint(j).name,
                                     trntype=mujoco.mjtTrn.mjTRN_JOINT)
        actuator.set_to_position(kp=kp, kv=2 * np.sqrt(kp * mass))


def is_position_servo(model: mujoco.MjModel, actuator: int) -> bool:
    """Whether `actuator` holds its transmission at its control value: a `<position>` actuator, or a `<general>`
    one with the same gain and bias (force = kp (ctrl - q) - kv dq, as Menagerie's arms are written)."""
    gain, bias = model.actuator_gainprm[actuator], model.actuator_biasprm[actuator]
    return (int(model.actuator_gaintype[actuator]) == int(mujoco.mjtGain.mjGAIN_FIXED)
            and int(model.actuator_biastype[actuator]) == int(mujoco.mjtBias.mjBIAS_AFFINE)
            and gain[0] > 0 and bias[0] == 0 and abs(bias[1] + gain[0]) <= 1e-9 * gain[0])


def arm_actuators(model: mujoco.MjModel) -> tuple[list[int], list[int]]:
    """(actuator ids, joint ids) of the arm: the actuators that each drive one hinge or slide joint as position
    servos, in actuator order. Actuators on anything else (a gripper's tendon, a site) are not the arm. ValueError
    for a scene without any, for a joint driven by force or velocity, and for an arm joint without a range (limits
    are part of the arm's description)."""
    actuators, joints = [], []
    for i in range(model.nu):
        if int(model.actuator_trntype[i]) != int(mujoco.mjtTrn.mjTRN_JOINT):
            continue
        joint = int(model.actuator_trnid[i, 0])
        if int(model.jnt_type[joint]) not in ARM_JOINT_TYPES:
            continue
        name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_ACTUATOR, i)
        if not is_position_servo(model, i):
            raise ValueError(f'actuator {name!r} drives joint {model.joint(joint).name!r} but not as a position '
                             f'servo; the sim commands the arm through position actuators (<position kp=...>)')
        if not model.jnt_limited[joint]:
            raise ValueError(f'joint {model.joint(joint).name!r} has no range; give it one (range="lower upper", or '
                             'lower/upper in the arm description)')
        actuators.append(i)
        joints.append(joint)
    if not joints:
        raise ValueError('the scene has no arm: its joints are those that position actuators drive, one each')
    return actuators, joints


def rigid_owner(model: mujoco.MjModel, body: int) -> int:
    """The body whose geoms carry `body`: itself, or for a frame without geoms fixed to its parent (a URDF `tool0`
    link), the nearest ancestor that has geoms."""
    while model.body_geomnum[body] == 0 and model.body_jntnum[body] == 0 and model.body_parentid[body] != 0:
        body = int(model.body_parentid[body])
    return body
