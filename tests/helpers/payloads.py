"""What an attacker puts into a checkpoint, for the safe-loading tests."""
import os


class RunsCode:
    """Unpickling this runs a shell command that creates the file ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))
