"""The ROS 2 adapter: message building, TF naming, image decoding, parameters and the node.

Only :mod:`headpose_ros.ros.node` imports rclpy; the other modules run without ROS (message building works
on rclpy message classes and on the ``rosbags`` typestore's alike).
"""
