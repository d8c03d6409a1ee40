"""Image builds only: print the requirements of cheeseboard (plus extras) from pyproject.toml.

Installing these before the source is copied keeps the dependency layer cached across source edits.
Usage: python requirements.py pyproject.toml [extra ...]
"""

import sys
import tomllib

with open(sys.argv[1], "rb") as handle:
    project = tomllib.load(handle)["project"]
requirements = list(project["dependencies"])
for extra in sys.argv[2:]:
    requirements += project["optional-dependencies"][extra]
print("\n".join(requirements))
