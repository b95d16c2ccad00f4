"""The sim env: determinism, bounds, goals, tracking."""
import mujoco
import numpy as np
import pytest

from jepa_agent.config import ConfigError, build
from jepa_agent.sim import ArmEnvConfig, make_env
from jepa_agent.sim.controlled_arm import ControlledArm
from jepa_agent.sim.scene import load_scene
from jepa_agent.sim.trajectory import TrajectoryError


def test_reset_is_deterministic_for_a_seed():
    a, b = make_env(), make_env()
    oa, ob = a.reset(7), b.reset(7)
    np.testing.assert_array_equal(oa.image, ob.image)
    np.testing.assert_array_equal(oa.qpos, ob.qpos)
    for _ in range(5):
        oa, ob = a.step(np.array([0.1, -0.1, 0.05])), b.step(np.array([0.1, -0.1, 0.05]))
    np.testing.assert_array_equal(oa.image, ob.image)
    assert not np.array_equal(make_env().reset(8).qpos, oa.qpos)


def test_step_never_leaves_joint_limits():
    env = make_env()
    env.reset(0)
    for _ in range(40):
        obs = env.step(np.full(env.n_joints, 10.0), render=False)
        assert np.all(env.joint_targets() <= env.upper + 1e-12)
    assert np.all(obs.qpos <= env.upper + 0.02)


def test_rate_limited_controller_clips_the_action_to_the_velocity_limit():
    env = make_env(controller='rate_limited')
    env.reset(0)
    q = env.joint_positions()
    env.step(np.full(env.n_joints, 1.0), render=False)
    np.testing.assert_allclose(env.joint_targets(), np.minimum(q + env.max_delta, env.upper))


def test_joint_trajectory_controller_ramps_to_the_target_without_clamping_speed():
    """Like joint_trajectory_controller: a step asking for more than the velocity limit gets it (nothing hides an
    unsafe command), and a step at the limit ramps the setpoint, so the arm moves at about the limit, not faster."""
    env = make_env()
    assert env.config.controller == 'joint_trajectory'
    env.reset(0)
    q = env.joint_positions()
    env.step(np.array([0.6, 0.0, 0.0]), render=False)          # 4x the velocity limit over one period
    np.testing.assert_allclose(env.joint_targets(), q + [0.6, 0.0, 0.0])
    assert env.joint_positions()[0] - q[0] > 2 * env.max_delta[0]
    assert env.peak_speed_ratio > 2.0
    env.reset(0)
    for sign in (1, 1, -1, -1, 1):                              # full speed with reversals
        env.step(sign * np.array([1.0, -1.0, 1.0]) * env.max_delta, render=False)
    assert 0.8 < env.peak_speed_ratio <= 1.1


def test_joint_targets_are_tracked():
    env = make_env()
    env.reset(2)
    target = env.joint_positions() + np.array([0.3, -0.3, 0.2])
    env.set_joint_targets(target)
    env.advance(0.5)
    np.testing.assert_allclose(env.joint_positions(), target, atol=0.01)


def test_nonfinite_action_is_refused():
    env = make_env()
    env.reset(0)
    with pytest.raises(ValueError):
        env.step(np.array([np.nan, 0, 0]))


@pytest.mark.parametrize('size', [64, 96, 224])
def test_render_size(size):
    env = make_env(image_size=size)
    obs = env.reset(0)
    assert obs.image.shape == (size, size, 3) and obs.image.dtype == np.uint8
    assert obs.image.std() > 5   # not a blank frame


def test_goal_is_reachable_and_scored():
    env = make_env()
    env.reset(3)
    goal = env.sample_goal(11)
    assert np.all(goal.qpos >= env.lower) and np.all(goal.qpos <= env.upper)
    np.testing.assert_array_equal(goal.image, env.sample_goal(11).image)   # deterministic, state untouched
    assert not env.success(goal) or env.distances(goal)['ee'] <= env.config.reach_tolerance
    env.set_joint_targets(goal.qpos)
    env.advance(2.0)
    assert env.success(goal), env.distances(goal)


def yellow_pixels(image: np.ndarray) -> int:
    """Pixels of the yellow tip sphere both example arms carry at their end effector."""
    r, g, b = image.astype(int).transpose(2, 0, 1)
    return int(((r > 170) & (g > 150) & (b < 110)).sum())


@pytest.mark.parametrize('scene', [{}, {'model_file': 'arm4.xml', 'camera': 'oblique', 'ee_site': 'tool',
                                        'block_joint': '', 'image_size': 80}])
def test_every_reach_goal_image_shows_the_end_effector(scene):
    """A goal image that hides the tip (under the table, out of frame) does not show where it should go; on arm4's
    oblique camera random poses often do (seed 1007's first draw put the tool under the table)."""
    env = make_env(**scene)
    for seed in range(1000, 1020):
        env.reset(seed, render=False)
        goal = env.sample_goal(seed)
        assert env.ee_in_view(goal.qpos) and yellow_pixels(goal.image) > 0, seed
    env.close()


def test_an_end_effector_under_the_table_or_out_of_frame_is_not_in_view():
    env = make_env(model_file='arm4.xml', camera='oblique', ee_site='tool', block_joint='', image_size=80)
    env.reset(0, render=False)
    for q, z_sign in (([0.0, 0.5, 1.2, 1.2], -1), ([0.0, -0.3, 0.3, 0.0], 1)):
        assert np.sign(env.forward_kinematics(np.array(q))[2]) == z_sign
    assert not env.ee_in_view(np.array([0.0, 0.5, 1.2, 1.2]))            # pitched down through the table
    assert env.ee_in_view(np.array([0.0, -0.3, 0.3, 0.0]))                # in front of the camera, above the table
    assert not env.ee_in_view(np.array([2.4, -1.2, 0.0, 0.0]))            # raised behind, beside the camera's view
    env.close()


@pytest.mark.parametrize('task, low, high, periods', [('push', 0.08, 0.20, 30), ('push_far', 0.15, 0.40, 80)])
def test_push_goals_are_reached_by_replaying_their_scripted_push(task, low, high, periods):
    """A push goal is the end state of a scripted push from the start state: 8–20 cm of block motion in at most 30
    periods (push_far: two pushes, at least 15 cm in at most 80), the start state untouched, and replaying the push
    from a fresh reset reaches it."""
    env = make_env(task=task)
    reached = 0
    for seed in range(1000, 1008):
        env.reset(seed, render=False)
        start, block = env.get_state(), env.block_pos()
        try:
            goal = env.sample_goal(seed)
        except ValueError as exc:
            assert f'no scripted {task}' in str(exc)
            continue
        np.testing.assert_array_equal(env.get_state(), start)
        assert low <= np.linalg.norm(goal.block_pos - block) <= high and len(goal.demonstration) <= periods
        assert not env.success(goal)
        env.reset(seed, render=False)
        for action in goal.demonstration:
            env.step(action, render=False)
        assert env.success(goal), env.distances(goal)
        reached += 1
    assert reached >= 3                    # most start states have a push (about 70 %; push_far about half)


@pytest.mark.parametrize('bad', [{'image_size': 8}, {'task': 'fly'}, {'control_hz': 0.0},
                                 {'controller': 'pid'}, {'camera_pos': [1.0, 0.0, 1.0]}])
def test_bad_config_is_a_clear_error(bad):
    with pytest.raises(ConfigError, match=list(bad)[0]):
        build(ArmEnvConfig, bad)


def test_any_mjcf_arm_with_a_named_camera_and_end_effector_site(tmp_path):
    env = make_env(model_file='arm4.xml', camera='oblique', ee_site='tool', block_joint='', image_size=40)
    assert env.joint_names == ['turret_yaw', 'shoulder_pitch', 'elbow_pitch', 'wrist_pitch']
    np.testing.assert_allclose(env.robot.lower, [-2.6, -1.2, -1.5, -1.5])
    obs = env.reset(3)
    assert obs.image.shape == (40, 40, 3) and obs.ee_pos.shape == (3,) and not env.has_block
    goal = env.sample_goal(3)
    np.testing.assert_allclose(env.forward_kinematics(goal.qpos), goal.ee_pos)
    moved = env.step(np.full(4, 0.1))
    assert np.all(moved.qpos - obs.qpos > 0.03)                      # every joint follows its actuator
    with pytest.raises(ValueError, match='push needs a block'):
        env.sample_goal(3, 'push')
    env.close()


def test_a_scene_the_sim_cannot_drive_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="ee_site 'gripper' is not in the scene .* has \\['tool'\\]"):
        make_env(model_file='arm4.xml', camera='oblique', ee_site='gripper')
    with pytest.raises(ValueError, match="camera 'top' is not in the scene"):
        make_env(model_file='arm4.xml', ee_site='tool')
    with pytest.raises(ValueError, match="block_joint 'block' is not in the scene"):   # '' says: no block
        make_env(model_file='arm4.xml', ee_site='tool', camera='oblique')
    with pytest.raises(ValueError, match='cannot load the scene'):
        make_env(model_file=str(tmp_path / 'missing.xml'))
    unlimited = tmp_path / 'unlimited.xml'
    unlimited.write_text('<mujoco><worldbody><body><joint name="j" type="hinge"/><geom size="0.1"/></body>'
                         '</worldbody><actuator><position joint="j"/></actuator></mujoco>')
    with pytest.raises(ValueError, match="joint 'j' has no range"):
        make_env(model_file=str(unlimited))


GRIPPER_ARM = '''<mujoco>
  <compiler angle="radian"/>
  <worldbody>
    <camera name="cam" pos="0.2 -1 0.4" xyaxes="1 0 0 0 0.4 1"/>
    <body><joint name="j1" axis="0 0 1" range="-1 1"/><geom type="capsule" size="0.03" fromto="0 0 0 0.3 0 0"/>
      <body pos="0.3 0 0"><joint name="j2" axis="0 1 0" range="-1 1"/>
        <geom type="capsule" size="0.03" fromto="0 0 0 0.2 0 0"/><site name="tip" pos="0.2 0 0"/>
        <body pos="0.2 0 0"><joint name="finger" type="slide" axis="1 0 0" range="0 0.04"/><geom size="0.01"/></body>
      </body>
    </body>
  </worldbody>
  <tendon><fixed name="grip"><joint joint="finger" coef="1"/></fixed></tendon>
  <actuator>
    <position name="a1" joint="j1" kp="400" kv="10"/>
    <J2/>
    <general name="grip" tendon="grip" biastype="affine" gainprm="10" biasprm="0 -10 -1" ctrlrange="0 0.04"/>
  </actuator>
  <keyframe><key qpos="0 0 0" ctrl="0 0 0.03"/></keyframe>
</mujoco>'''


def test_the_arm_is_the_joints_position_servos_drive_and_a_gripper_keeps_its_setpoint(tmp_path):
    """Menagerie's arms write position servos as <general> actuators and drive their gripper through a tendon."""
    scene = tmp_path / 'arm.xml'
    servo = '<general name="a2" joint="j2" biastype="affine" gainprm="400" biasprm="0 -400 -10"/>'
    scene.write_text(GRIPPER_ARM.replace('<J2/>', servo))
    env = make_env(model_file=str(scene), camera='cam', ee_site='tip', block_joint='', image_size=16)
    assert env.joint_names == ['j1', 'j2']
    obs = env.reset(1, render=False)
    assert env.data.ctrl[2] == 0.03                                  # the gripper: its keyframe's setpoint
    moved = env.step(np.array([0.2, -0.2]), render=False)
    assert moved.qpos[0] - obs.qpos[0] > 0.1 and obs.qpos[1] - moved.qpos[1] > 0.1
    np.testing.assert_allclose(env.joint_targets(), obs.qpos + [0.2, -0.2])
    assert env.data.ctrl[2] == 0.03
    env.close()
    scene.write_text(GRIPPER_ARM.replace('<J2/>', '<motor name="a2" joint="j2"/>'))
    with pytest.raises(ValueError, match="actuator 'a2' drives joint 'j2' but not as a position servo"):
        make_env(model_file=str(scene), camera='cam', ee_site='tip', block_joint='')


FLOOR_ARM = '''<mujoco>
  <compiler angle="radian"/>
  <worldbody>
    <camera name="cam" pos="0.2 -1 0.3" xyaxes="1 0 0 0 0.3 1"/>
    <geom name="floor" type="plane" size="1 1 0.1" pos="0 0 -0.06"/>
    <body><joint name="j1" axis="0 0 1" range="-1 1"/><geom type="capsule" size="0.03" fromto="0 0 0 0.3 0 0"/>
      <body pos="0.3 0 0"><joint name="j2" axis="0 1 0" range="-1 1"/>
        <geom type="capsule" size="0.03" fromto="0 0 0 0.2 0 0"/><site name="tip" pos="0.2 0 0"/>
      </body>
    </body>
  </worldbody>
  <actuator><position joint="j1" kp="400" kv="10"/><position joint="j2" kp="400" kv="10"/></actuator>
</mujoco>'''


def test_resets_and_reach_goals_are_poses_in_no_collision(tmp_path):
    """The forearm of this arm dips into the floor for most of its pitch range (as Menagerie's UR5e does within its
    limits): resets and reach goals are drawn among the poses that are free; a working range with none is an error
    that says so."""
    scene = tmp_path / 'arm.xml'
    scene.write_text(FLOOR_ARM)
    env = make_env(model_file=str(scene), camera='cam', ee_site='tip', block_joint='', image_size=16)
    draws = np.random.default_rng(0)
    assert sum(env.collides(env.random_joint_positions(draws)) for _ in range(40)) > 10
    for seed in range(10):
        env.reset(seed, render=False)
        assert not env.collides(env.joint_positions()) and env.ee_pos()[2] > -0.03
        assert not env.collides(env.sample_goal(seed).qpos)
    env.close()
    with pytest.raises(ValueError, match='free of collisions'):
        make_env(model_file=str(scene), camera='cam', ee_site='tip', block_joint='', image_size=16,
                 joint_names=['j1', 'j2'], lower=[-1.0, 0.6], upper=[1.0, 1.0]).reset(0, render=False)


URDF = '''<?xml version="1.0"?>
<robot name="urdf_arm">
  <link name="base_link">
    <visual><geometry><cylinder radius="0.06" length="0.1"/></geometry></visual>
    <collision><geometry><cylinder radius="0.06" length="0.1"/></geometry></collision>
    <inertial><mass value="2"/><inertia ixx="0.01" iyy="0.01" izz="0.01" ixy="0" ixz="0" iyz="0"/></inertial>
  </link>
  <link name="upper">
    <collision><origin xyz="0 0 0.1"/><geometry><box size="0.05 0.05 0.3"/></geometry></collision>
    <inertial><origin xyz="0 0 0.15"/><mass value="1"/>
      <inertia ixx="0.008" iyy="0.008" izz="0.001" ixy="0" ixz="0" iyz="0"/></inertial>
  </link>
  <link name="fore">
    <collision><origin xyz="0 0 0.12"/><geometry><box size="0.04 0.04 0.24"/></geometry></collision>
    <inertial><origin xyz="0 0 0.12"/><mass value="0.6"/>
      <inertia ixx="0.003" iyy="0.003" izz="0.0005" ixy="0" ixz="0" iyz="0"/></inertial>
  </link>
  <link name="tool0"/>
  <link name="bracket">
    <collision><geometry><mesh filename="package://urdf_arm/meshes/tip.stl"/></geometry></collision>
  </link>
  <link name="stand">
    <collision><geometry><mesh filename="/home/someone/ws/src/urdf_arm/meshes/tip.stl"/></geometry></collision>
  </link>
  <joint name="bracket" type="fixed"><parent link="base_link"/><child link="bracket"/><origin xyz="0.2 0 0"/></joint>
  <joint name="stand" type="fixed"><parent link="base_link"/><child link="stand"/><origin xyz="-0.2 0 0"/></joint>
  <joint name="yaw" type="revolute"><parent link="base_link"/><child link="upper"/><origin xyz="0 0 0.05"/>
    <axis xyz="0 0 1"/><limit lower="-1.5" upper="1.5" effort="50" velocity="1.5"/></joint>
  <joint name="pitch" type="continuous"><parent link="upper"/><child link="fore"/><origin xyz="0 0 0.3"/>
    <axis xyz="0 1 0"/></joint>
  <joint name="flange" type="fixed"><parent link="fore"/><child link="tool0"/><origin xyz="0 0 0.24"/></joint>
</robot>
'''
URDF_ARM = dict(camera='cam', camera_pos=[0.6, -0.6, 0.7], camera_target=[0.0, 0.0, 0.35], ee_site='tool0',
                block_joint='', image_size=32, joint_names=['yaw', 'pitch'], lower=[-1.2, -1.0], upper=[1.2, 1.0])


def write_tetrahedron_stl(path, size: float) -> None:
    """A binary STL file of one tetrahedron with edges `size` (m) along the axes."""
    corners = np.array([[0, 0, 0], [size, 0, 0], [0, size, 0], [0, 0, size]], np.float32)
    faces = [(0, 2, 1), (0, 1, 3), (0, 3, 2), (1, 2, 3)]
    with open(path, 'wb') as f:
        f.write(bytes(80) + np.uint32(len(faces)).tobytes())
        for face in faces:
            f.write(np.zeros(3, np.float32).tobytes() + corners[list(face)].tobytes() + bytes(2))


def test_a_urdf_is_completed_from_the_parameters_camera_servos_tool_link_and_ranges(tmp_path):
    """A URDF has links, joints and limits only: the sim adds the camera, servos on its joints, the end-effector
    site on the named (fixed, kept) link and, for a continuous joint, the range of the arm description. Its first
    link overlaps the base (welded to the world) at their joint, as URDF meshes do: no contact may lock it."""
    urdf = tmp_path / 'arm.urdf'
    urdf.write_text(URDF)
    write_tetrahedron_stl(tmp_path / 'tip.stl', 0.03)        # meshes of package:// and foreign paths: beside it
    env = make_env(model_file=str(urdf), **URDF_ARM)
    assert env.joint_names == ['yaw', 'pitch'] and env.robot.lower == [-1.2, -1.0]
    assert [env.model.body(b).geomnum[0] for b in ('bracket', 'stand', 'tool0')] == [1, 1, 0]
    obs = env.reset(0)
    assert (obs.image.max(-1) > 40).mean() > 0.02                   # the added camera sees the arm
    moved = env.step(np.array([0.1, -0.1]))
    assert moved.qpos[0] - obs.qpos[0] > 0.05 and obs.qpos[1] - moved.qpos[1] > 0.05     # the added servos drive it
    np.testing.assert_allclose(env.ee_pos(), env.forward_kinematics(moved.qpos), atol=2e-3)   # a physics step late
    tip = env.data.xpos[env.model.body('fore').id] + env.data.xmat[env.model.body('fore').id].reshape(3, 3)[:, 2] * 0.24
    np.testing.assert_allclose(env.ee_pos(), tip, atol=1e-9)         # tool0, 24 cm along the forearm
    goal = env.sample_goal(3)                                        # reach goals: the tool in view
    assert env.ee_in_view(goal.qpos) and np.all(goal.qpos >= env.lower) and np.all(goal.qpos <= env.upper)
    env.close()
    with pytest.raises(ValueError, match="camera 'cam' is not in the scene .*camera_pos and camera_target add one"):
        make_env(model_file=str(urdf), **{**URDF_ARM, 'camera_pos': [], 'camera_target': []})
    with pytest.raises(ValueError, match="joint 'pitch' has no range"):
        make_env(model_file=str(urdf), **{**URDF_ARM, 'joint_names': [], 'lower': [], 'upper': []})


HEAVY_HAND_URDF = '''<?xml version="1.0"?>
<robot name="heavy_hand">
  <link name="base_link"/>
  <link name="fore">
    <inertial><origin xyz="0 0 0.12"/><mass value="0.1"/>
      <inertia ixx="0.0005" iyy="0.0005" izz="0.0001" ixy="0" ixz="0" iyz="0"/></inertial>
  </link>
  <link name="hand">
    <inertial><origin xyz="0 0 0.05"/><mass value="1.0"/>
      <inertia ixx="0.0001" iyy="0.0001" izz="0.0001" ixy="0" ixz="0" iyz="0"/></inertial>
  </link>
  <joint name="pitch" type="revolute"><parent link="base_link"/><child link="fore"/><origin xyz="0 0 0.1"/>
    <axis xyz="0 1 0"/><limit lower="-1.5" upper="1.5" effort="50" velocity="1.5"/></joint>
  <joint name="wrist" type="revolute"><parent link="fore"/><child link="hand"/><origin xyz="0 0 0.24"/>
    <axis xyz="0 1 0"/><limit lower="-1.5" upper="1.5" effort="50" velocity="1.5"/></joint>
</robot>
'''


def test_the_servos_added_to_a_urdf_hold_a_heavy_hand_still(tmp_path):
    """A heavy hand on a light forearm couples the two joints strongly; with the servos the sim adds (sized from
    each joint's own inertia) MuJoCo's default Euler integrator made them oscillate at half the physics rate
    (25 rad/s here) while the positions seemed to stand still."""
    urdf = tmp_path / 'arm.urdf'
    urdf.write_text(HEAVY_HAND_URDF)
    model = load_scene(urdf)
    data = mujoco.MjData(model)
    data.qpos[:] = data.ctrl[:] = [0.3, 0.5]
    for _ in range(500):                                             # 1 s holding the pose
        mujoco.mj_step(model, data)
    np.testing.assert_allclose(data.qpos, [0.3, 0.5], atol=0.05)                 # gravity sag aside
    assert np.abs(data.qvel).max() < 1e-3


ARM4 = dict(model_file='arm4.xml', camera='oblique', ee_site='tool', block_joint='', image_size=40)


def test_the_arm_description_narrows_the_scene_to_its_working_range():
    """A real arm's MJCF often allows ±2π where its user works in a smaller range (the other nodes' `lower`,
    `upper`): resets, reach goals and the sim's controller keep to the description, not to the scene's ranges."""
    lower, upper = [-1.0, -0.6, -0.5, -0.4], [1.0, 0.2, 0.5, 0.4]
    env = make_env(**ARM4, joint_names=['turret_yaw', 'shoulder_pitch', 'elbow_pitch', 'wrist_pitch'],
                   lower=lower, upper=upper, velocity_limit=[1.0, 1.0, 2.0, 2.0])
    assert env.robot.lower == lower and env.robot.upper == upper and env.robot.velocity_limit == [1, 1, 2, 2]
    for seed in range(20):
        q = env.reset(seed, render=False).qpos
        assert np.all(q >= np.array(lower) - 0.05) and np.all(q <= np.array(upper) + 0.05), q   # settled
        goal = env.sample_goal(seed)
        assert np.all(goal.qpos >= lower) and np.all(goal.qpos <= upper), goal.qpos
    env.step(np.full(4, 1.0), render=False)
    assert np.all(env.data.ctrl[:4] <= np.array(upper) + 1e-9)        # targets kept inside the working range
    np.testing.assert_allclose(env.max_delta, np.array([1.0, 1.0, 2.0, 2.0]) * env.control_dt)
    arm = ControlledArm(env)                                       # the sim node's controller
    with pytest.raises(TrajectoryError, match='joint 0 = 1.5000 is outside the limits \\[-1.0000, 1.0000\\]'):
        arm.send([2.0], [[1.5, 0.0, 0.0, 0.0]], now=0.0)             # inside the scene's range, outside the arm's
    arm.send([2.0], [[0.9, 0.0, 0.0, 0.0]], now=0.0)
    env.close()


@pytest.mark.parametrize('description, message', [
    ({'joint_names': ['a', 'b', 'c', 'd']}, "not the scene's actuated joints in actuator order: \\['turret_yaw'"),
    ({'lower': [-3.0, -1.0, -1.0, -1.0]}, "joint 'turret_yaw', \\[-3, 2.6\\], must be a range inside the scene's "
                                          "\\[-2.6, 2.6\\]"),
    ({'upper': [1.0, 1.0]}, 'upper needs one value per joint \\(4\\), each finite'),
    ({'velocity_limit': [1.0, 0.0, 1.0, 1.0]}, 'velocity limits must be > 0'),
])
def test_a_description_that_does_not_fit_the_scene_is_a_clear_error(description, message):
    with pytest.raises(ValueError, match=message):
        make_env(**ARM4, **description)


def test_mirror_poses_arm_and_block_for_kinematics_without_simulating():
    env = make_env()
    env.reset(3, render=False)
    q, xy, time = np.array([0.4, -0.8, 1.1]), np.array([0.2, -0.1]), env.data.time
    env.mirror(q, xy)
    np.testing.assert_allclose(env.joint_positions(), q)
    np.testing.assert_allclose(env.block_pos(), xy)
    np.testing.assert_allclose(env.ee_pos(), env.forward_kinematics(q))
    dq = np.array([1e-4, -2e-4, 1.5e-4])                       # the Jacobian is the mirrored pose's
    np.testing.assert_allclose(env.ee_jacobian() @ dq, env.forward_kinematics(q + dq) - env.ee_pos(), atol=1e-7)
    assert env.data.time == time
