"""The ``detreplay`` entry point: pytest_replay under its distribution's name.

It adds nothing. It exists so that ``-p no:detreplay`` disables the plugin as
``-p no:replay`` does: :mod:`pytest_replay.plugin` stays inert when this name is blocked.
"""
