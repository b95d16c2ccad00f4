"""Keyboard teleop: key mapping (ROS-free), terminal handling, and keys piped into a real node moving the sim arm."""
import fcntl
import os
import pty
import select
import subprocess
import sys
import termios

import numpy as np
import pytest
from conftest import wait_for
from ros_helpers import JointWatcher

from jepa_agent.config import ConfigError, build
from jepa_agent.nodes.teleop_keyboard import TeleopConfig
from jepa_agent.teleop import KeyboardJogger, KeyReader, help_text

LOWER, UPPER = np.array([-1.0, -2.0, -2.0]), np.array([1.0, 2.0, 2.0])


def test_jog_keys_move_one_joint_each_and_accumulate():
    jog = KeyboardJogger(LOWER, UPPER, step=0.1)
    measured = np.zeros(3)
    np.testing.assert_allclose(jog.handle('q', measured), [0.1, 0, 0])
    np.testing.assert_allclose(jog.handle('q', measured), [0.2, 0, 0])   # builds on the last target, not on lag
    np.testing.assert_allclose(jog.handle('s', measured), [0.2, -0.1, 0])
    np.testing.assert_allclose(jog.handle('e', measured), [0.2, -0.1, 0.1])
    np.testing.assert_allclose(jog.handle('d', measured), [0.2, -0.1, 0.0])


def test_hold_key_targets_the_measured_position():
    jog = KeyboardJogger(LOWER, UPPER)
    jog.handle('q', np.zeros(3))
    np.testing.assert_allclose(jog.handle(' ', np.array([0.05, 0.3, -0.2])), [0.05, 0.3, -0.2])
    np.testing.assert_allclose(jog.handle('a', np.zeros(3)), [-0.05, 0.3, -0.2])


def test_step_size_keys_are_bounded_and_send_nothing():
    jog = KeyboardJogger(LOWER, UPPER, step=0.1)
    assert jog.handle('+', np.zeros(3)) is None and jog.step == pytest.approx(0.2)
    for _ in range(10):
        jog.handle('+', np.zeros(3))
    assert jog.step == 1.0
    for _ in range(20):
        jog.handle('-', np.zeros(3))
    assert jog.step == 0.01


def test_targets_stay_within_limits_and_unmapped_keys_are_ignored():
    jog = KeyboardJogger(LOWER, UPPER, step=0.8)
    for _ in range(5):
        target = jog.handle('q', np.zeros(3))
    np.testing.assert_allclose(target, [1.0, 0, 0])
    assert jog.handle('r', np.zeros(3)) is None      # 4th joint's key on a 3-joint arm
    assert jog.handle('x', np.zeros(3)) is None


def test_too_many_joints_or_bad_step_are_config_errors():
    with pytest.raises(ConfigError, match='at most 6 joints'):
        build(TeleopConfig, {'joint_names': list('abcdefg'), 'lower': [-1.0] * 7, 'upper': [1.0] * 7,
                             'velocity_limit': [1.0] * 7})
    with pytest.raises(ConfigError, match='step'):
        build(TeleopConfig, {'step': 5.0})
    assert 'q / a : shoulder' in help_text(['shoulder', 'elbow'])


def test_terminal_is_put_in_cbreak_mode_and_restored():
    master, slave = pty.openpty()
    try:
        with os.fdopen(slave, 'rb', buffering=0, closefd=False) as stream:
            before = termios.tcgetattr(slave)
            reader = KeyReader(stream)
            assert reader.is_terminal
            assert not termios.tcgetattr(slave)[3] & termios.ICANON
            os.write(master, b'qa')
            keys = iter(reader)
            assert [next(keys), next(keys)] == ['q', 'a']
            reader.close()
            assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)


@pytest.mark.slow
def test_piped_keys_move_the_sim_arm(start_node, ros_probe):
    sim = start_node('sim_arm', params={'seed': 1})
    joints = JointWatcher(ros_probe, ['shoulder', 'elbow', 'wrist'])
    assert wait_for(lambda: joints.positions() is not None, timeout=30.0), sim.output()
    start = joints.positions()
    teleop = start_node('teleop_keyboard', stdin=subprocess.PIPE)
    teleop.proc.stdin.write(b'qqqd+w')                 # shoulder +0.3, wrist -0.1, then step 0.2: elbow +0.2
    teleop.proc.stdin.close()
    target = start + [0.3, 0.2, -0.1]
    assert wait_for(lambda: np.max(np.abs(joints.positions() - target)) < 0.02, timeout=15.0), \
        (joints.positions(), target, teleop.output())
    assert wait_for(lambda: not teleop.alive(), timeout=10.0) and teleop.proc.returncode == 0, teleop.output()
    assert 'rejected' not in sim.output()


@pytest.mark.slow
def test_terminal_session_restores_the_terminal_after_ctrl_c():
    """The node on a real pseudo-terminal: cbreak while running, Ctrl-C exits cleanly and restores the settings."""
    master, slave = pty.openpty()
    before = termios.tcgetattr(slave)

    def own_terminal():   # make the pty the controlling terminal, so Ctrl-C becomes SIGINT as in a shell
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen([sys.executable, '-m', 'jepa_agent.nodes.teleop_keyboard'], stdin=slave, stdout=slave,
                            stderr=slave, preexec_fn=own_terminal)
    screen = b''
    try:
        def shows_help():
            nonlocal screen
            while select.select([master], [], [], 0)[0]:
                screen += os.read(master, 4096)
            return b'terminal input' in screen
        assert wait_for(shows_help, timeout=20.0), screen
        assert b'q / a : shoulder' in screen
        assert not termios.tcgetattr(slave)[3] & termios.ICANON
        os.write(master, b'\x03')
        assert proc.wait(10) == 0
        assert termios.tcgetattr(slave) == before
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
        os.close(slave)
