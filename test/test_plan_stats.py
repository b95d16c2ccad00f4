"""The planner's diagnostics numbers (ROS-free): rate over recent plans, latency percentiles, time at the goal."""
import pytest

from jepa_agent.planning.plan_stats import IDLE_S, PlanStats


def test_plan_stats_report_rate_latency_and_time_at_goal():
    stats = PlanStats()
    assert stats.values(0.0)['plan_rate_hz'] == '0.00' and stats.values(0.0)['plan_latency_ms_p50'] == 'nan'
    for k in range(11):                                   # 10 Hz, 50 ms per plan, at the goal from t = 0.5 s
        stats.planned(k * 0.1 - 0.05, k * 0.1, 120.0, 0.5, at_goal=k >= 5)
    values = stats.values(1.2)
    assert float(values['plan_rate_hz']) == pytest.approx(10.0)
    assert float(values['plan_latency_ms_p50']) == pytest.approx(50.0) and values['frame_to_command_ms_p95'] == '120.0'
    assert values['at_goal'] == 'True' and values['at_goal_s'] == '0.7'
    assert stats.values(1.0 + IDLE_S + 0.1)['plan_rate_hz'] == '0.00'          # stopped publishing
    stats.holding()
    assert stats.values(1.2)['at_goal'] == 'False'
