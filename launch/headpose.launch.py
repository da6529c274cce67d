"""Launch headpose_node (and optionally RViz).

    ros2 launch headpose_ros headpose.launch.py image:=/camera/image_raw camera_info:=/camera/camera_info rviz:=true

Arguments: image, camera_info (topics to remap the node's ``image`` and ``camera_info`` to; with
``image_transport:=compressed`` the node reads ``<image>/compressed``), params_file (default: the package's
config/headpose.yaml), namespace, use_sim_time, rviz, image_transport and device (each overrides the file's value
when not empty) and fixed_frame (RViz's fixed frame: the camera's optical frame).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "headpose_ros"


def _node(context, *args, **kwargs):
    """The headpose_node action, built once the arguments are known."""
    image = LaunchConfiguration("image").perform(context)
    camera_info = LaunchConfiguration("camera_info").perform(context)
    device = LaunchConfiguration("device").perform(context).strip()
    transport = LaunchConfiguration("image_transport").perform(context).strip()
    use_sim_time = LaunchConfiguration("use_sim_time").perform(context).lower() in ("true", "1", "yes")
    overrides = {"use_sim_time": use_sim_time}
    if device:
        overrides["device"] = device
    if transport:
        overrides["image_transport"] = transport
    return [Node(
        package=PACKAGE,
        executable="headpose_node",
        name="headpose_node",
        namespace=LaunchConfiguration("namespace"),
        parameters=[LaunchConfiguration("params_file"), overrides],
        remappings=[("image", image), ("image/compressed", image.rstrip("/") + "/compressed"),
                    ("camera_info", camera_info)],
        output="screen",
        emulate_tty=True,
        # ros2 launch exits on SIGTERM without stopping its processes: the node then gets SIGTERM from the kernel
        # (prctl PR_SET_PDEATHSIG, see headpose_ros.ros.node.stop_with_parent) and stops cleanly.
        additional_env={"HEADPOSE_STOP_WITH_PARENT": "1"},
    )]


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    return LaunchDescription([
        DeclareLaunchArgument("image", default_value="/camera/image_raw",
                              description="camera image topic (sensor_msgs/Image)"),
        DeclareLaunchArgument("camera_info", default_value="/camera/camera_info",
                              description="camera_info topic (optional: without it positions are unit-depth rays)"),
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([share, "config", "headpose.yaml"]),
                              description="parameters file"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node and its topics"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock (bag playback)"),
        DeclareLaunchArgument("rviz", default_value="false", description="also start RViz with the package's view"),
        DeclareLaunchArgument("image_transport", default_value="",
                              description="raw or compressed (reads <image>/compressed); empty keeps the parameters "
                                          "file's image_transport"),
        DeclareLaunchArgument("device", default_value="",
                              description="auto, cpu or gpu; empty keeps the parameters file's device"),
        DeclareLaunchArgument("fixed_frame", default_value="camera_color_optical_frame",
                              description="RViz fixed frame: the image's header.frame_id"),
        OpaqueFunction(function=_node),
        Node(
            package="rviz2",
            executable="rviz2",
            name="headpose_rviz",
            arguments=["-d", PathJoinSubstitution([share, "config", "headpose.rviz"]),
                       "-f", LaunchConfiguration("fixed_frame")],
            parameters=[{"use_sim_time": LaunchConfiguration("use_sim_time")}],
            condition=IfCondition(LaunchConfiguration("rviz")),
            output="log",
        ),
    ])
