"""ROS-free MuJoCo arm environment (stand-in for Gazebo in tests, demo and benchmarks)."""
from jepa_agent.sim.arm_env import ArmEnv, ArmEnvConfig, Goal, Observation, make_env

__all__ = ['ArmEnv', 'ArmEnvConfig', 'Goal', 'Observation', 'make_env']
