"""Names and paths that reach a shell, scp or Ansible: one safe character set, checked where
they enter (a bundle's name and files, a device folder, a device's Python).

Quoting alone is not enough: the classic scp protocol hands the remote path to the device's
shell, and Ansible renders `{{ ... }}` in anything it is given. So a name or folder outside
this set is refused up front, with the offending character named, identically on every path
(local folder, ssh with or without SFTP, fleet)."""
import string

SAFE_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "._+-@,=")
SAFE_PATH_CHARS = SAFE_NAME_CHARS | frozenset("/")
MAX_NAME = 255  # one path component (NAME_MAX on Linux)
MAX_PATH = 4096  # PATH_MAX on Linux


class UnsafeName(ValueError):
    """A name or path with a character outside the safe set; str() says which and where."""


def _char(c):
    return repr(c) if c.isprintable() and c != " " else "U+%04X" % ord(c)


def _check(text, what, allowed, limit):
    if not isinstance(text, str) or not text:
        raise UnsafeName("%s is empty or not text" % what)
    if len(text) > limit:
        raise UnsafeName("%s is %d characters long (at most %d)" % (what, len(text), limit))
    for i, c in enumerate(text):
        if c not in allowed:
            punct = " ".join(sorted(allowed - frozenset(string.ascii_letters + string.digits)))
            raise UnsafeName("%s %r has the character %s at position %d; use only letters, digits and %s"
                             % (what, text, _char(c), i, punct))
    for part in text.split("/"):
        if part.startswith("-"):
            raise UnsafeName("%s %r has a part starting with '-' (%r), which tools read as an option" % (what, text, part))
        if part == "..":
            raise UnsafeName("%s %r climbs out with '..'" % (what, text))
    return text


def check_name(text, what):
    """A single safe path component (a bundle's folder name); returns it or raises UnsafeName."""
    _check(text, what, SAFE_NAME_CHARS, MAX_NAME)  # refuses ".." too
    if text == ".":
        raise UnsafeName("%s %r is not a name" % (what, text))
    return text


def check_path(text, what):
    """A safe '/'-separated path (a folder on a device, a file inside a bundle)."""
    return _check(text, what, SAFE_PATH_CHARS, MAX_PATH)


def check_folder(text, what):
    """An absolute, safe folder on a device (reached over SSH or Ansible)."""
    if not isinstance(text, str) or not text.startswith("/"):
        raise UnsafeName("%s %r is not an absolute folder on the device; e.g. /home/pi/models" % (what, text))
    return check_path(text, what)


def safe_name(text):
    """text with every character outside the safe set replaced by '_' (names we make ourselves
    from a user's model file name, so that what we make is always deployable)."""
    out = "".join(c if c in SAFE_NAME_CHARS else "_" for c in text)[:MAX_NAME] or "_"
    return "_" + out[1:] if out[0] in "-." else out
