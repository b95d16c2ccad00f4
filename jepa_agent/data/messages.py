"""ROS messages (and goal image files) -> numpy, checked: the decoding shared by the nodes and bag import, with no
ROS package needed.

Functions read message fields by name (`.encoding/.height/.width/.step/.data`, `.name/.position`, `.joint_names/
.points`), so rclpy messages and `rosbags` deserialized messages decode alike; a message that breaks its type's
contract raises MessageError with a sentence saying what is wrong. Building messages needs the message classes and
lives in `jepa_agent.ros.conversions`.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from jepa_agent.data.quality import LIMIT_MARGIN_RAD

CHANNELS = {'rgb8': 3, 'bgr8': 3, 'mono8': 1, 'rgba8': 4, 'bgra8': 4}
#: largest image accepted (pixels); a larger header is a corrupt or hostile message, not a camera
MAX_IMAGE_PIXELS = 4096 * 4096
#: longest piece of message content (encoding, joint names) quoted in a MessageError
QUOTE_CHARS = 80
#: longest reason text logged; a 5000-character topic string or encoding is cut here
MAX_REASON_CHARS = 200


class MessageError(ValueError):
    """A message cannot be converted; the text says what is wrong with it."""


def truncate(text: str, max_chars: int = MAX_REASON_CHARS) -> str:
    """`text` cut to `max_chars` characters, saying how much was left out."""
    text = str(text)
    if len(text) <= max_chars:
        return text
    return f'{text[:max_chars]}... ({len(text) - max_chars} more characters)'


def _quote(value) -> str:
    """repr of message content, cut short: a 1000-character field never reaches the log in full."""
    return truncate(repr(value), QUOTE_CHARS)


ImageDecoder = Callable[[object], np.ndarray]
"""Decodes any Image message to (H, W, 3) uint8 RGB; raises on what it cannot decode (e.g. ROS 2 cv_bridge's)."""


def image_to_rgb(msg, expected_shape: tuple[int, int, int] | None = None,
                 decoder: ImageDecoder | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an Image: by `decoder` when given (any encoding it knows), else by this module's
    numpy decoding of rgb8/bgr8/mono8/rgba8/bgra8, honouring `step` row padding.

    Rejects (MessageError) what breaks the Image contract: an encoding neither decodes, zero or more than
    MAX_IMAGE_PIXELS pixels, `step` shorter than a row, `data` not exactly step × height bytes; and, when
    `expected_shape` is given, another size.
    """
    if msg.encoding not in CHANNELS and decoder is None:
        raise MessageError(f'unsupported image encoding {_quote(msg.encoding)}; expected one of {sorted(CHANNELS)} '
                           f'(or install cv_bridge)')
    ch = CHANNELS.get(msg.encoding, 1)
    if msg.height == 0 or msg.width == 0 or msg.step < msg.width * ch:
        raise MessageError(f'bad image geometry {msg.width}x{msg.height} step {msg.step} for {msg.encoding}')
    if msg.height * msg.width > MAX_IMAGE_PIXELS:
        raise MessageError(f'image of {msg.width}x{msg.height} is larger than {MAX_IMAGE_PIXELS} pixels')
    if len(msg.data) != msg.step * msg.height:
        raise MessageError(f'image data has {len(msg.data)} bytes, expected {msg.step * msg.height} '
                           f'(step {msg.step} x height {msg.height})')
    if expected_shape is not None and (msg.height, msg.width, 3) != tuple(expected_shape):
        raise MessageError(f'image size changed to {msg.width}x{msg.height}; this dataset records '
                           f'{expected_shape[1]}x{expected_shape[0]}')
    if decoder is not None:
        return _decoded(decoder, msg)
    buf = np.frombuffer(msg.data if isinstance(msg.data, (bytes, np.ndarray)) else bytes(msg.data), np.uint8)
    img = buf.reshape(msg.height, msg.step)[:, :msg.width * ch].reshape(msg.height, msg.width, ch)
    if msg.encoding == 'mono8':
        return np.repeat(img, 3, axis=2)
    if msg.encoding.startswith('bgr'):
        img = img[:, :, 2::-1]
    return np.ascontiguousarray(img[:, :, :3])


def _decoded(decoder: ImageDecoder, msg) -> np.ndarray:
    """The decoder's RGB of `msg`, held to what the numpy decoding guarantees."""
    try:
        rgb = np.asarray(decoder(msg))
    except Exception as exc:  # noqa: BLE001  decoders raise their own kinds (cv_bridge: CvBridgeError, cv2.error)
        raise MessageError(f'cannot decode {_quote(msg.encoding)} image: {truncate(str(exc))}') from exc
    if rgb.shape != (msg.height, msg.width, 3) or rgb.dtype != np.uint8:
        raise MessageError(f'image decoder gave {rgb.dtype} {rgb.shape}, expected uint8 {(msg.height, msg.width, 3)}')
    return np.ascontiguousarray(rgb)


def joint_positions(msg, names: Sequence[str], field: str = 'position', *,
                    lower: Sequence[float] | None = None, upper: Sequence[float] | None = None,
                    margin: float = LIMIT_MARGIN_RAD) -> np.ndarray:
    """Values of `field` for `names`, matched by joint name (never by index).

    Raises MessageError if a name is duplicated or missing, the arrays are inconsistent, a value is not finite,
    or (when `lower`/`upper` are given, in `names` order) a value lies beyond them by more than `margin`.
    """
    values = list(getattr(msg, field))
    if len(values) != len(msg.name):
        raise MessageError(f'JointState has {len(msg.name)} names but {len(values)} {field} values')
    if len(set(msg.name)) != len(msg.name):
        duplicated = sorted({n for n in msg.name if list(msg.name).count(n) > 1})
        raise MessageError(f'JointState has duplicated joint names {_quote(duplicated)}')
    index = {n: i for i, n in enumerate(msg.name)}
    missing = [n for n in names if n not in index]
    if missing:
        raise MessageError(f'JointState lacks joints {_quote(missing)} (has {_quote(list(msg.name))})')
    out = np.array([values[index[n]] for n in names], dtype=np.float64)
    if not np.all(np.isfinite(out)):
        raise MessageError(f'JointState {field} has non-finite values: {_quote(dict(zip(names, out)))}')
    check_limits(out[None], names, lower, upper, margin, f'JointState {field}')
    return out


def position_xy(msg) -> np.ndarray:
    """(2,) x and y of a geometry_msgs/PoseStamped's position (a block on the table); MessageError if not finite."""
    xy = np.array([msg.pose.position.x, msg.pose.position.y], dtype=np.float64)
    if not np.all(np.isfinite(xy)):
        raise MessageError(f'pose position {xy.tolist()} is not finite')
    return xy


def check_limits(positions: np.ndarray, names: Sequence[str], lower: Sequence[float] | None,
                 upper: Sequence[float] | None, margin: float, what: str) -> None:
    """MessageError if any row of `positions` (N, J) lies outside [lower - margin, upper + margin]."""
    if lower is None and upper is None:
        return
    lo = np.full(len(names), -np.inf) if lower is None else np.asarray(lower, np.float64)
    hi = np.full(len(names), np.inf) if upper is None else np.asarray(upper, np.float64)
    outside = (positions < lo - margin) | (positions > hi + margin)
    if outside.any():
        row, j = np.argwhere(outside)[0]
        raise MessageError(f'{what} beyond the joint limits: {names[j]}={positions[row, j]:.4g} rad, '
                           f'limits [{lo[j]:.4g}, {hi[j]:.4g}] (+{margin:g} rad)')


def duration_to_sec(d) -> float:
    """Seconds of a builtin_interfaces Duration or Time (`.sec`, `.nanosec`)."""
    return d.sec + d.nanosec * 1e-9


def trajectory_points(msg, names: Sequence[str], *, lower: Sequence[float] | None = None,
                      upper: Sequence[float] | None = None, margin: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(times (N,), positions (N, J) ordered as `names`) of a JointTrajectory, validated.

    Rejects (MessageError): no points, unknown or missing joints, duplicate names, wrong point sizes, non-finite
    values, non-increasing time_from_start, and (when `lower`/`upper` are given, in `names` order) positions
    beyond them by more than `margin` (a command outside the limits is never followed or stored).
    """
    if not msg.points:
        raise MessageError('trajectory has no points')
    if len(set(msg.joint_names)) != len(msg.joint_names):
        raise MessageError(f'trajectory has duplicate joint names {_quote(list(msg.joint_names))}')
    unknown = sorted(set(msg.joint_names) - set(names))
    missing = [n for n in names if n not in msg.joint_names]
    if unknown or missing:
        raise MessageError(f'trajectory joints {_quote(list(msg.joint_names))}: unknown {_quote(unknown)}, '
                           f'missing {_quote(missing)}')
    order = [list(msg.joint_names).index(n) for n in names]
    times, rows = [], []
    for i, pt in enumerate(msg.points):
        if len(pt.positions) != len(msg.joint_names):
            raise MessageError(f'point {i} has {len(pt.positions)} positions for {len(msg.joint_names)} joints')
        times.append(duration_to_sec(pt.time_from_start))
        rows.append([pt.positions[j] for j in order])
    times, positions = np.array(times), np.array(rows, dtype=np.float64)
    if not np.all(np.isfinite(positions)) or not np.all(np.isfinite(times)):
        raise MessageError('trajectory contains NaN or inf')
    if np.any(np.diff(times) <= 0) or times[0] < 0:
        raise MessageError(f'time_from_start must be non-negative and strictly increasing, got '
                           f'{_quote(times.tolist())}')
    check_limits(positions, names, lower, upper, margin, 'trajectory')
    return times, positions


def read_image_file(path: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file (any mode PIL reads: RGBA, grey, ...); ValueError for anything else,
    including files larger than MAX_IMAGE_PIXELS (checked from the header, before decoding)."""
    from PIL import Image as PILImage
    try:
        with PILImage.open(path) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise ValueError(f'{image.width}x{image.height} is larger than {MAX_IMAGE_PIXELS} pixels')
            return np.asarray(image.convert('RGB'))
    except Exception as exc:  # noqa: BLE001  PIL raises many kinds (OSError, SyntaxError, DecompressionBombError)
        raise ValueError(f'cannot read goal image {truncate(repr(path))}: {exc}') from exc
