"""`jepa-agent data ...`: collect, inspect, check and convert episode datasets.

    jepa-agent data collect-sim --out data/babble --episodes 20 --steps 200 --seed 0 [--image-size 64]
    jepa-agent data collect-sim --out data/play --source play        # or curiosity [--checkpoint models/reach_64px]
    jepa-agent data info data/babble [--json]
    jepa-agent data verify data/babble [--repair]
    jepa-agent data import-bag BAG --out data/from_bag [--config config/recorder.yaml] [--image-topic /wrist/image]
    jepa-agent data export-lerobot data/babble --out data/babble_lerobot
    jepa-agent data import-lerobot data/babble_lerobot --out data/from_lerobot [--config my_arm.yaml]
    jepa-agent data record start|stop|discard [--recorder /recorder]   # the recorder node's services (ROS side:
                                                                       # jepa_agent.ros.cli)
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import warnings
from pathlib import Path

from jepa_agent.data.bag import BagError, BagTopics, import_bag
from jepa_agent.data.collect import MODES, SOURCES
from jepa_agent.data.episode_reader import EpisodeReader
from jepa_agent.data.episode_writer import recover_episode
from jepa_agent.data.episodes import DatasetError, episode_dirs, read_dataset_meta
from jepa_agent.data.quality import frame_problems
from jepa_agent.sim.arm_env import CONTROLLERS


def add_commands(subparsers) -> argparse._SubParsersAction:
    """Register `data` and its ROS-free sub-commands; returns them so `jepa_agent.cli` can add the ROS-side ones."""
    data = subparsers.add_parser('data', help='episode datasets: collect-sim | info | verify | import-bag | '
                                 'export-lerobot | import-lerobot | record',
                                 description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = data.add_subparsers(dest='data_command', required=True)

    p = sub.add_parser('collect-sim', help='record motor-babbling episodes from the MuJoCo arm as the explorer, '
                       'sim_arm and recorder nodes would, in simulated time (no ROS)')
    p.add_argument('--out', required=True, type=Path, help='dataset directory (created or appended to)')
    p.add_argument('--episodes', type=int, default=10)
    p.add_argument('--steps', type=int, default=200, help='frames per episode (10 Hz, the recorder default)')
    p.add_argument('--seed', type=int, default=0, help='episode e uses seed + e')
    p.add_argument('--image-size', type=int, default=None, help='camera image side (default: --config\'s, or 64)')
    p.add_argument('--config', type=Path, default=None,
                   help='a params file in the nodes\' layout (e.g. config/examples/arm4.yaml): its sim_arm section '
                        'sets the scene, camera and timing, its explorer section the babbling')
    p.add_argument('--mode', choices=MODES, default=MODES[0],
                   help="'nodes': the explorer -> sim_arm -> recorder pipeline in simulated time (default); 'steps': "
                        "one ArmEnv.step per frame (idealized timing, what the shipped model was trained on)")
    p.add_argument('--controller', choices=CONTROLLERS, default=None,
                   help='the sim arm\'s controller (ArmEnvConfig.controller; default: --config\'s, or like '
                        'joint_trajectory_controller)')
    p.add_argument('--source', choices=SOURCES, default=SOURCES[0],
                   help="'babble': motor babbling (default); 'play': noisy scripted pushes of the block mixed with "
                        "babbling; 'curiosity': babbling that lingers where the world model is surprised")
    p.add_argument('--checkpoint', type=Path, default=None,
                   help='curiosity: the world model whose surprise steers it (default: the shipped reach_64px)')
    p.set_defaults(func=cmd_collect_sim)

    p = sub.add_parser('info', help='episodes, frames, duration, joints, camera of a dataset')
    p.add_argument('dir', type=Path)
    p.add_argument('--json', action='store_true', help='machine-readable output')
    p.set_defaults(func=cmd_info)

    p = sub.add_parser('verify', help='check every file and checksum, joints within limits, images not blank, '
                       'times increasing and not in the future; exit 1 on any problem')
    p.add_argument('dir', type=Path)
    p.add_argument('--repair', action='store_true',
                   help='recover interrupted episodes (cut their partial trailing frame, mark them recovered)')
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser('import-bag', help='rosbag2 (MCAP or sqlite3) -> episodes, synchronized like the recorder')
    p.add_argument('bag', type=Path, help='bag directory (with metadata.yaml) or .mcap/.db3 file')
    p.add_argument('--out', required=True, type=Path, help='dataset directory (created or appended to)')
    p.add_argument('--config', type=Path, help="recorder YAML (joints, limits, rate, tolerances); default: "
                   "recorder's defaults (the sim arm)")
    for field in dataclasses.fields(BagTopics):
        p.add_argument('--' + field.name.replace('_', '-'), dest=field.name, default=field.default,
                       help=f'bag topic of the {field.name.removesuffix("_topic").replace("_", " ")} stream '
                       '(default: %(default)s)')
    p.add_argument('--task')
    p.add_argument('--rate-hz', dest='rate_hz', type=float)
    p.add_argument('--episode-frames', dest='episode_frames', type=int, help='split into episodes of N frames')
    p.set_defaults(func=cmd_import_bag)

    p = sub.add_parser('export-lerobot', help='write a LeRobot dataset v3.0 (parquet + mp4)')
    p.add_argument('dir', type=Path, help='episode dataset to export')
    p.add_argument('--out', required=True, type=Path, help='LeRobot dataset directory (must be new or empty)')
    p.add_argument('--robot-type', default='jepa_agent_arm', help='info.json robot_type')
    p.add_argument('--overwrite', action='store_true', help='replace a non-empty --out')
    p.set_defaults(func=cmd_export_lerobot)

    p = sub.add_parser('import-lerobot', help='read a LeRobot dataset v3.0 (parquet + mp4) into episodes')
    p.add_argument('dir', type=Path, help='LeRobot dataset directory (with meta/info.json)')
    p.add_argument('--out', required=True, type=Path, help='episode dataset (created or appended to)')
    p.add_argument('--config', type=Path, default=None,
                   help='params file whose recorder section describes the robot (joint names and limits); default: '
                        'the data\'s range and fastest motion')
    p.add_argument('--video-key', default=None, help='camera feature to import when there are several')
    p.set_defaults(func=cmd_import_lerobot)

    return sub


def collect_configs(path: Path | None) -> tuple:
    """(ArmEnvConfig params, PipelineTiming, BabbleConfig) from the sim_arm and explorer sections of a params file
    (each may be missing; parameters that only the nodes have are ignored). The arm's description (joint names and
    limits) is the sim_arm section's, else the explorer's: collect-sim babbles where the explorer would."""
    from jepa_agent.config import build, load_section
    from jepa_agent.data.babble import BabbleConfig
    from jepa_agent.data.collect import PipelineTiming
    from jepa_agent.robot import RobotDescription
    from jepa_agent.sim.arm_env import scene_params

    def section(node: str) -> dict:
        return load_section(path, node, required=False) if path else {}

    def only(cls, params: dict) -> dict:
        names = {f.name for f in dataclasses.fields(cls)}
        return {k: v for k, v in params.items() if k in names}

    sim, explorer = section('sim_arm'), section('explorer')
    rate = {'explorer_hz': explorer['rate_hz']} if 'rate_hz' in explorer else {}
    timing = build(PipelineTiming, {**only(PipelineTiming, sim), **rate}, section='sim_arm')
    scene = {**only(RobotDescription, explorer), **scene_params(path)}
    return scene, timing, build(BabbleConfig, only(BabbleConfig, explorer), section='explorer')


def load_surprise(checkpoint: Path | None):
    """The surprise of a world model (default: the shipped reach_64px) that curiosity steers by. The one import of
    the model package from data (setup.cfg's layers contract lets this function wire the two together)."""
    from jepa_agent.model.checkpoint import load_checkpoint
    from jepa_agent.model.surprise import LatentSurprise
    from jepa_agent.resources import model_path

    model, _ = load_checkpoint(checkpoint or model_path('reach_64px'))
    return LatentSurprise(model)


def cmd_collect_sim(args) -> int:
    from jepa_agent.config import ConfigError
    from jepa_agent.data.collect import collect_sim
    from jepa_agent.sim.arm_env import make_env

    def progress(e: int, info: dict) -> None:
        print(f'episode {info["index"]}: {info["n_frames"]} frames (seed {info["seed"]}), arm-block contact in '
              f'{info["contact_fraction"]:.0%}', flush=True)

    try:
        scene, timing, babble = collect_configs(args.config)
        scene.setdefault('image_size', 64)
        if args.image_size is not None:
            scene['image_size'] = args.image_size
        if args.controller is not None:
            scene['controller'] = args.controller
        surprise = load_surprise(args.checkpoint) if args.source == 'curiosity' else None
        env = make_env(**scene)
    except (ConfigError, ValueError, OSError) as exc:
        print(f'jepa-agent data collect-sim: {exc}', file=sys.stderr)
        return 2
    try:
        collect_sim(args.out, args.episodes, args.steps, args.seed, env=env, progress=progress, mode=args.mode,
                    timing=timing, babble=babble, source=args.source, surprise=surprise)
    except (ValueError, OSError) as exc:
        print(f'jepa-agent data collect-sim: {exc}', file=sys.stderr)
        return 2
    finally:
        env.close()
    print(f'wrote {args.episodes} episodes to {args.out}')
    return 0


def dataset_summary(root: Path) -> dict:
    """Dataset metadata plus per-episode frames/duration/status (and collect-sim's source and contact fraction);
    unreadable episodes listed with the reason."""
    meta = read_dataset_meta(root)
    episodes = []
    for path in episode_dirs(root):
        try:
            r = EpisodeReader(path, meta)
            episodes.append({'episode': path.name, 'status': 'interrupted' if r.interrupted else r.status,
                             'frames': len(r), 'duration_s': round(r.duration, 3), 'task': r.info.get('task', ''),
                             **{k: r.info[k] for k in ('source', 'contact_fraction') if k in r.info}})
        except (DatasetError, OSError) as exc:
            episodes.append({'episode': path.name, 'status': 'corrupt', 'error': str(exc)})
    from jepa_agent.data.dataset import action_statistics
    try:
        motion = {k: round(v, 4) for k, v in action_statistics(root).items()}
    except (ValueError, DatasetError, OSError):
        motion = None                       # no usable episode with commanded motion
    contact = [e['contact_fraction'] for e in episodes if 'contact_fraction' in e]
    return {'dataset': str(root), **meta.to_dict(), 'episodes': episodes, 'motion': motion,
            'contact_fraction': round(sum(contact) / len(contact), 4) if contact else None,
            'total_frames': sum(e.get('frames', 0) for e in episodes),
            'total_duration_s': round(sum(e.get('duration_s', 0.0) for e in episodes), 3)}


def cmd_info(args) -> int:
    try:
        summary = dataset_summary(args.dir)
    except DatasetError as exc:
        print(f'jepa-agent data info: {exc}', file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f'{summary["dataset"]}: {len(summary["episodes"])} episodes, {summary["total_frames"]} frames, '
          f'{summary["total_duration_s"]:.1f} s at {summary["rate_hz"]:g} Hz  (source: {summary["source"]})')
    print(f'joints: {", ".join(summary["joint_names"])}')
    print(f'camera: {summary["image_width"]}x{summary["image_height"]} {summary["encoding"]}')
    if summary['motion']:
        print(f'motion: the joints move {summary["motion"]["command_response"]:.0%} of a commanded step by the next '
              f'frame; mean joint speed {summary["motion"]["mean_speed"]:.3f} rad/s')
    if summary['contact_fraction'] is not None:
        print(f'contact: the arm touches the block in {summary["contact_fraction"]:.1%} of the frames (mean over '
              'episodes that measured it)')
    for e in summary['episodes']:
        detail = e.get('error') or f'{e["frames"]:6d} frames {e["duration_s"]:8.2f} s  {e["task"]}'
        print(f'  {e["episode"]}  {e["status"]:<11} {detail}')
    return 0


def verify_dataset(root: Path, repair: bool = False, now: float | None = None) -> tuple[list[str], list[str]]:
    """(problems, notes): problems are integrity failures and bad frames (one line per kind and episode, see
    `frame_problems`; `now` = unix time for the future-stamp check); notes are recoverable conditions and repairs."""
    now = time.time() if now is None else now
    try:
        meta = read_dataset_meta(root)
    except DatasetError as exc:
        return [str(exc)], []
    problems, notes = [], []
    for path in episode_dirs(root):
        if repair:
            try:
                report = recover_episode(path)
            except (DatasetError, OSError) as exc:
                problems.append(f'{path.name}: recovery failed: {exc}')
                continue
            if report:
                notes.append(report)
        try:
            reader = EpisodeReader(path, meta)
        except (DatasetError, OSError) as exc:
            problems.append(str(exc))
            continue
        bad = reader.verify_images()
        if bad:
            problems.append(f'{path.name}/images.u8: image CRC mismatch in frames {bad[:10]}')
        problems += frame_problems(reader, now)
        if reader.interrupted:
            notes.append(f'{path.name}: interrupted recording, {len(reader)} complete frames readable, '
                         f'{reader.partial_bytes} trailing bytes; run with --repair to finalize it')
    return problems, notes


def cmd_verify(args) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        problems, notes = verify_dataset(args.dir, repair=args.repair)
    for note in notes:
        print(f'note: {note}')
    for problem in problems:
        print(f'ERROR: {problem}')
    n = len(episode_dirs(args.dir))
    print(f'{args.dir}: {n} episodes, {len(problems)} problem(s)' + ('' if problems else ': OK'))
    return 1 if problems else 0


def cmd_import_bag(args) -> int:
    from jepa_agent.config import load
    from jepa_agent.data.recording import RecorderConfig

    overrides = {k: getattr(args, k) for k in ('task', 'rate_hz', 'episode_frames') if getattr(args, k) is not None}
    config = load(RecorderConfig, args.config, 'recorder', overrides)
    names = BagTopics(**{field.name: getattr(args, field.name) for field in dataclasses.fields(BagTopics)})
    try:
        result = import_bag(args.bag, args.out, config, names)
    except (BagError, DatasetError, OSError) as exc:
        print(f'jepa-agent data import-bag: {exc}', file=sys.stderr)
        return 1
    for kind, count in result.skipped.items():
        print(f'warning: skipped {count} {kind} message(s), first: {result.first_errors[kind]}', file=sys.stderr)
    for kind, count in result.sync.counts.items():
        if count:
            print(f'note: {count} frame(s) dropped or missed: {kind.replace("_", " ")}', file=sys.stderr)
    frames = sum(e['n_frames'] for e in result.episodes)
    print(f'imported {len(result.episodes)} episode(s), {frames} frames into {args.out}')
    return 0 if frames else 1


def cmd_export_lerobot(args) -> int:
    from jepa_agent.data.lerobot import ExportError, export_lerobot

    try:
        info = export_lerobot(args.dir, args.out, robot_type=args.robot_type, overwrite=args.overwrite)
    except (ExportError, DatasetError, OSError) as exc:
        print(f'jepa-agent data export-lerobot: {exc}', file=sys.stderr)
        return 1
    print(f'wrote LeRobot {info["codebase_version"]} dataset to {args.out}: {info["total_episodes"]} episodes, '
          f'{info["total_frames"]} frames at {info["fps"]} fps')
    return 0


def cmd_import_lerobot(args) -> int:
    from jepa_agent.config import ConfigError, load
    from jepa_agent.data.lerobot import LeRobotImportError, import_lerobot
    from jepa_agent.data.recording import RecorderConfig
    from jepa_agent.robot import RobotDescription

    try:
        robot = None
        if args.config is not None:
            config = load(RecorderConfig, args.config, 'recorder')
            robot = RobotDescription(**{f.name: getattr(config, f.name) for f in dataclasses.fields(RobotDescription)})
        episodes = import_lerobot(args.dir, args.out, robot, args.video_key)
    except (ConfigError, LeRobotImportError, DatasetError, OSError) as exc:
        print(f'jepa-agent data import-lerobot: {exc}', file=sys.stderr)
        return 1
    print(f'imported {len(episodes)} episode(s), {sum(e["n_frames"] for e in episodes)} frames into {args.out}')
    return 0
