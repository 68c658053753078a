"""Image files checked before training, and decoding errors that name the file.

MXNet decodes images with OpenCV: a truncated JPEG decodes as a partial picture (grey
bottom) with a libjpeg warning on stderr and no error, and a corrupt file fails deep in a
DataLoader worker with ``Decoding failed`` and no file name. Two remedies, shared by every
image-folder reader (hot dog, the Kaggle folders, a RecordIO packer):

* :func:`check_image_folder` / :func:`check_image_file` -- a cheap pass over the files
  before anything trains: the header must parse (Pillow reads only the header) and a JPEG
  must end with its end-of-image marker, a PNG with its ``IEND`` chunk, which is exactly
  what a cut-off download or copy loses. Cost: one open, a header and a tail read per file.
* :class:`ImageFolderDataset` -- Gluon's, whose items re-raise a decoding failure as
  :class:`ImageDataError` naming the file.
"""
import os

from mxnet import gluon
from mxnet.base import MXNetError

__all__ = ['ImageDataError', 'check_image_file', 'check_image_folder', 'ImageFolderDataset',
           'IMAGE_EXTS']

IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.tif', '.tiff', '.webp')
_JPEG_SOI, _JPEG_EOI = b'\xff\xd8', b'\xff\xd9'
_PNG_SIG, _PNG_END = b'\x89PNG\r\n\x1a\n', b'IEND\xaeB`\x82'


class ImageDataError(ValueError):
    """An image file is missing, truncated or cannot be decoded; the message names it."""


def check_image_file(path):
    """Raise :class:`ImageDataError` naming ``path`` if it is not a whole, readable image.

    Checks the header (Pillow) and, for JPEG and PNG, that the file ends where the format
    says it ends (``FF D9`` / the ``IEND`` chunk; trailing zero padding is accepted).
    """
    from PIL import Image
    try:
        size = os.path.getsize(path)
        with open(path, 'rb') as f:
            head = f.read(8)
            f.seek(max(0, size - 64))
            tail = f.read().rstrip(b'\0')
    except OSError as e:
        raise ImageDataError(f'{path}: cannot be read ({e.strerror or e})') from e
    if size == 0:
        raise ImageDataError(f'{path}: empty file (0 bytes)')
    if head.startswith(_JPEG_SOI) and not tail.endswith(_JPEG_EOI):
        raise ImageDataError(f'{path}: truncated JPEG ({size} bytes, no end-of-image marker); '
                             'it would decode as a partial image')
    if head.startswith(_PNG_SIG) and not tail.endswith(_PNG_END):
        raise ImageDataError(f'{path}: truncated PNG ({size} bytes, no IEND chunk)')
    try:
        with Image.open(path) as im:
            w, h = im.size
    except Exception as e:  # noqa: BLE001 - Pillow raises many types for a bad header
        raise ImageDataError(f'{path}: not a readable image ({type(e).__name__}: {e})') from e
    if w <= 0 or h <= 0:
        raise ImageDataError(f'{path}: image of size {w}x{h}')


def check_image_folder(root, exts=IMAGE_EXTS, max_listed=5):
    """Check every image under ``root`` (recursively) with :func:`check_image_file`; return
    the number of images. Raises :class:`ImageDataError` listing the first bad files and
    how many there are in all."""
    if not os.path.isdir(root):
        raise ImageDataError(f'{root}: image folder missing')
    bad, n = [], 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if not name.lower().endswith(exts):
                continue
            n += 1
            try:
                check_image_file(os.path.join(dirpath, name))
            except ImageDataError as e:
                bad.append(str(e))
    if bad:
        more = f' (and {len(bad) - max_listed} more)' if len(bad) > max_listed else ''
        raise ImageDataError(f'{len(bad)} of {n} images under {root} are unusable{more}:\n  '
                             + '\n  '.join(bad[:max_listed]))
    return n


class ImageFolderDataset(gluon.data.vision.ImageFolderDataset):
    """Gluon's ``ImageFolderDataset`` (same arguments and items); a file that fails to
    decode raises :class:`ImageDataError` naming it instead of MXNet's bare
    ``Decoding failed``."""

    def __getitem__(self, idx):
        try:
            return super().__getitem__(idx)
        except (MXNetError, OSError, ValueError) as e:
            raise ImageDataError(f'{self.items[idx][0]}: cannot be decoded '
                                 f'({str(e).strip().splitlines()[-1][:200]})') from e
