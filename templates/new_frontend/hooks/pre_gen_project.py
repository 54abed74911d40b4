"""Reject names that asdcore would not accept before anything is generated."""
import keyword
import re
import sys

LOWER_SNAKE = re.compile(r"[a-z][a-z0-9_]*")
names = {
    "plugin_name": {{ cookiecutter.plugin_name | tojson }},
    "package_name": {{ cookiecutter.package_name | tojson }},
    "frontend_name": {{ cookiecutter.frontend_name | tojson }},
    "class_name": {{ cookiecutter.class_name | tojson }},
}
errors = [f"{key} {names[key]!r} must be lower_snake_case (a-z, 0-9, _; starting with a letter)"
          for key in ("package_name", "frontend_name")
          if not LOWER_SNAKE.fullmatch(names[key]) or keyword.iskeyword(names[key])]
if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", names["plugin_name"]):
    errors.append(f"plugin_name {names['plugin_name']!r} is not a valid distribution name (e.g. asd-logmel)")
if not names["class_name"].isidentifier() or keyword.iskeyword(names["class_name"]):
    errors.append(f"class_name {names['class_name']!r} is not a Python class name")
if errors:
    sys.exit("ERROR: " + "; ".join(errors))
