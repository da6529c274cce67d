"""headpose_ros: head pose from five facial keypoints (Gupta et al., ICASSP 2019) for ROS 2 robots.

Layers: :mod:`headpose_ros.estimator` (no ROS), :mod:`headpose_ros.ros` (the node and message building) and
:mod:`headpose_ros.tools` (command line, training, evaluation, benchmarks).
"""

__version__ = "0.1.0"
