"""The helpers of mmlit's tools (``tools/``, ``demo/``): building targets and timing steps for the
benchmarks, FLOP counting, GEMM replay, the official code beside mmlit's, ONNX export, the launchers'
checks, bf16 autocast of the features, and the visualisation tools' inputs.

Not part of the installed ``mmlit`` package: the tool scripts put ``tools/`` on ``sys.path`` (the tests'
``conftest.py`` too), and ``mim`` ships this folder with the tools.
"""
