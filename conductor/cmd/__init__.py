import warnings

# oslo.messaging needs oslo.service, which installs eventlet; TaskFlow then
# imports eventlet when it is present (taskflow.utils.eventlet_utils) and
# eventlet warns on import that it is deprecated.  glance-clone never uses
# it (no monkey patching, threads only): the warning would only be noise on
# every command's stderr.
warnings.filterwarnings('ignore', message=r'\s*Eventlet is deprecated')
