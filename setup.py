"""ament_python package headpose_ros: also a plain pip-installable Python package."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "headpose_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    package_data={"headpose_ros.estimator": ["models/*.weights.h5", "models/*.tflite", "models/*.json",
                                             "models/*.md"],
                  # hri_msgs definitions (BSD 3-clause, see their LICENSE) for writing REP-155 topics into bags
                  "headpose_ros.ros": ["msg/hri_msgs/*.msg", "msg/hri_msgs/LICENSE", "msg/hri_msgs/README.md"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.rviz")),
    ],
    python_requires=">=3.10",
    install_requires=["setuptools", "numpy>=1.22,<2", "scipy", "PyYAML", "tqdm"],
    zip_safe=False,
    maintainer="headpose_ros developers",
    maintainer_email="headpose-ros@example.org",
    description="Head pose from nose, eyes and ears (Gupta et al. 2019) for ROS 2: /head_pose and REP-155 TF frames",
    license="MIT",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "headpose-ros = headpose_ros.tools.cli:main",
            "headpose_node = headpose_ros.ros.node:main",
        ],
    },
)
