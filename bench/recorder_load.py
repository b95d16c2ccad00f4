"""Recorder under load: a 30 Hz 224x224 rgb8 camera and 500 Hz joint states into a real `recorder` process.

    .venv/bin/python bench/recorder_load.py                      # 120 s, the documented run
    .venv/bin/python bench/recorder_load.py --duration 20 --json-out /tmp/load.json

Reports frames expected (camera rate x recorded time) vs written, the recorder's own drop counters, its peak RSS
(VmHWM) and the write rate (MB/s of episode files per second of recording).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

os.environ.setdefault('ROS_DOMAIN_ID', str(random.Random(os.getpid()).randint(1, 101)))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')

import rclpy  # noqa: E402  (the DDS domain must be chosen first)
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.time import Time  # noqa: E402
from sensor_msgs.msg import Image, JointState  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from jepa_agent.data.episode_reader import EpisodeReader  # noqa: E402
from jepa_agent.data.episodes import episode_dirs  # noqa: E402
from jepa_agent.ros.conversions import rgb_to_image  # noqa: E402
from jepa_agent.ros.qos import RELIABLE, SENSOR  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
NAMES = ['shoulder', 'elbow', 'wrist']


class Publisher:
    """Camera and joint-state streams from two threads, paced against the monotonic clock."""

    def __init__(self, node, image_size: int, camera_hz: float, joint_hz: float):
        self.node = node
        self.images = node.create_publisher(Image, '/camera/image_raw', SENSOR)
        self.joints = node.create_publisher(JointState, '/joint_states', RELIABLE)
        rng = np.random.default_rng(0)
        self._frames = [rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8) for _ in range(8)]
        self.counts = {'images': 0, 'joint_states': 0}
        self.camera_hz = camera_hz
        self.max_gap_s: dict[str, float] = {}     # longest pause of each publishing thread (a starved CPU)
        self._t0 = node.get_clock().now().nanoseconds
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=(hz, send), daemon=True)
                         for hz, send in ((camera_hz, self._image), (joint_hz, self._joint_state))]
        for thread in self._threads:
            thread.start()

    def _loop(self, hz: float, send) -> None:
        period, deadline, last = 1.0 / hz, time.monotonic(), None
        while not self._stop.is_set():
            send()
            now = time.monotonic()
            if last is not None:
                self.max_gap_s[send.__name__] = max(self.max_gap_s.get(send.__name__, 0.0), now - last)
            last = now
            deadline += period
            delay = deadline - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)

    def _image(self) -> None:
        """Stamped on the camera's exact schedule (like a hardware-timed camera), whenever it gets published."""
        k = self.counts['images']
        stamp = Time(nanoseconds=self._t0 + round(k * 1e9 / self.camera_hz))
        self.images.publish(rgb_to_image(self._frames[k % len(self._frames)], stamp.to_msg()))
        self.counts['images'] += 1

    def _joint_state(self) -> None:
        now = self.node.get_clock().now()
        t = now.nanoseconds * 1e-9
        msg = JointState(name=NAMES, position=[np.sin(t), np.cos(t), 0.5 * np.sin(2 * t)], velocity=[0.0] * 3)
        msg.header.stamp = now.to_msg()
        self.joints.publish(msg)
        self.counts['joint_states'] += 1

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def call(node, name: str, timeout: float = 10.0) -> Trigger.Response:
    client = node.create_client(Trigger, name)
    if not client.wait_for_service(timeout_sec=timeout):
        raise RuntimeError(f'{name} not available')
    future = client.call_async(Trigger.Request())
    deadline = time.monotonic() + timeout
    while not future.done() and time.monotonic() < deadline:
        time.sleep(0.01)
    if not future.done():
        raise RuntimeError(f'{name} did not answer')
    return future.result()


def cpu_seconds(pid: int) -> float:
    fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def peak_rss_mb(pid: int) -> float:
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) / 1024
    return float('nan')


def run(duration: float, image_size: int, camera_hz: float, joint_hz: float, dataset: Path) -> dict:
    recorder = subprocess.Popen(
        [sys.executable, '-m', 'jepa_agent.nodes.recorder', '--ros-args', '-p', f'dataset_dir:={dataset}',
         '-p', f'rate_hz:={camera_hz}', '-p', 'max_queued_frames:=64'],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    rclpy.init()
    node = rclpy.create_node('recorder_load')
    diagnostics: list[dict] = []
    node.create_subscription(DiagnosticArray, '/diagnostics', lambda m: diagnostics.extend(
        {v.key: v.value for v in s.values} for s in m.status if s.name.startswith('recorder')), RELIABLE)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    publisher = Publisher(node, image_size, camera_hz, joint_hz)
    try:
        deadline = time.monotonic() + 30
        while not call(node, '/recorder/start_episode').success:
            if time.monotonic() > deadline:
                raise RuntimeError('recorder never started an episode')
            time.sleep(0.5)
        started = time.monotonic()
        cpu_before = cpu_seconds(recorder.pid)
        sent_before = dict(publisher.counts)
        time.sleep(duration)
        stop = call(node, '/recorder/stop_episode')
        recorded_s = time.monotonic() - started
        cpu_percent = 100 * (cpu_seconds(recorder.pid) - cpu_before) / recorded_s
        sent = {k: publisher.counts[k] - sent_before[k] for k in sent_before}
        time.sleep(1.5)                      # let the writer thread finish and one more diagnostics message arrive
        rss = peak_rss_mb(recorder.pid)
    finally:
        publisher.stop()
        recorder.send_signal(2)
        log = recorder.communicate(timeout=20)[0]
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    reader = EpisodeReader(episode_dirs(dataset)[-1])
    size_mb = sum(f.stat().st_size for f in reader.path.iterdir()) / 2 ** 20
    last = diagnostics[-1] if diagnostics else {}
    expected = round(recorded_s * camera_hz)
    return {
        'date': time.strftime('%Y-%m-%d', time.gmtime()), 'duration_s': round(recorded_s, 2),
        'image': f'{image_size}x{image_size} rgb8', 'camera_hz_sent': round(sent['images'] / recorded_s, 2),
        'joint_hz_sent': round(sent['joint_states'] / recorded_s, 1), 'frames_expected': expected,
        'frames_written': len(reader), 'frames_missing': max(0, expected - len(reader)),
        'recorder_dropped_frames': int(last.get('dropped_frames', -1)),
        'recorder_dropped_queue_full': int(last.get('dropped_queue_full', -1)),
        'recorder_dropped_no_joints': int(last.get('dropped_no_joints', -1)),
        'recorder_missed_grid_frames': int(last.get('missed_grid_frames', -1)),
        'recorder_rejected_images': int(last.get('rejected_image', 0)),   # listed once one is rejected
        'recorder_received_images': int(last.get('received_images', -1)),
        'images_lost_in_transport': max(0, expected - int(last.get('received_images', expected))),
        'publisher_max_pause_s': {k.strip('_'): round(v, 3) for k, v in publisher.max_gap_s.items()},
        'recorder_cpu_percent': round(cpu_percent, 1), 'load_average_1min': os.getloadavg()[0],
        'peak_rss_mb': round(rss, 1), 'written_mb': round(size_mb, 1),
        'write_mb_per_s': round(size_mb / recorded_s, 2), 'stop_reply': stop.message,
        'recorder_log_tail': log.splitlines()[-15:],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--duration', type=float, default=120.0, help='seconds of recording')
    parser.add_argument('--image-size', type=int, default=224)
    parser.add_argument('--camera-hz', type=float, default=30.0, help='camera rate = recording rate')
    parser.add_argument('--joint-hz', type=float, default=500.0)
    parser.add_argument('--json-out', type=Path)
    parser.add_argument('--record', action='store_true', help='write bench/results/ for the README table')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix='recorder_load_') as tmp:
        result = run(args.duration, args.image_size, args.camera_hz, args.joint_hz, Path(tmp) / 'ds')
    print(json.dumps(result, indent=2))
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2))
    if args.record:
        from results import record
        r = result
        record('recorder_load', f"recorder under load: {r['image']} camera at {args.camera_hz:g} Hz + "
               f"{args.joint_hz:g} Hz joint states, {r['duration_s']:.0f} s",
               f"{r['frames_written']}/{r['frames_expected']} frames, {r['recorder_dropped_frames']} dropped, "
               f"peak RSS {r['peak_rss_mb']:.0f} MB, {r['write_mb_per_s']} MB/s", '0 drops, < 500 MB',
               {k: v for k, v in r.items() if k != 'recorder_log_tail'}, order=20)
    return 0


if __name__ == '__main__':
    sys.exit(main())
