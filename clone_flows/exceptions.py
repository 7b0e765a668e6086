"""Errors a user can cause, each with a sentence for the task message.

An unexpected error keeps its traceback in logs and in the flow's persisted
failure; only :class:`CloneError` subclasses speak to the user.
"""


class CloneError(Exception):
    """Base class: ``str(exc)`` is the sentence shown to the user."""


class InvalidRequest(CloneError):
    """The clone request itself is malformed."""


class InvalidImageId(InvalidRequest):
    def __init__(self, image_id):
        super().__init__(
            f"'{image_id}' is not a valid image id (expected a UUID)")


class RegionNotFound(CloneError):
    def __init__(self, region, service='image'):
        super().__init__(
            f"region '{region}' has no {service} endpoint in the service "
            f"catalog")


class SourceImageNotFound(CloneError):
    def __init__(self, image_id, region):
        super().__init__(f"image {image_id} is not visible to you in {region}")


class SourceNotDownloadable(CloneError):
    def __init__(self, image_id, region):
        super().__init__(
            f"you may not download image {image_id} in {region} (the image "
            f"service's download policy refuses it), so it cannot be cloned")


class SourceImageNotActive(CloneError):
    def __init__(self, image_id, region, status):
        super().__init__(
            f"image {image_id} in {region} is '{status}'; only active images "
            f"can be cloned")


class SourceImageVanished(CloneError):
    def __init__(self, image_id, region, status=None):
        how = 'was deleted' if status is None else f"became '{status}'"
        super().__init__(
            f"image {image_id} {how} in {region} during the copy; the partial "
            f"copy was removed")


class EncryptedImage(CloneError):
    def __init__(self, image_id, region):
        super().__init__(
            f"image {image_id} in {region} is encrypted and its key lives in "
            f"{region}'s key manager; this cloud does not clone encrypted "
            f"images between regions")


class VolumeSnapshotImage(CloneError):
    def __init__(self, image_id, region):
        super().__init__(
            f"image {image_id} is a snapshot of a volume-backed server: its "
            f"data are volume snapshots in {region}, which another region "
            f"cannot use")


class UnresolvedReferences(CloneError):
    def __init__(self, image_id, source_region, target_region, refs):
        named = ' and '.join(f'{key} {ref}' for key, ref in refs)
        super().__init__(
            f"image {image_id} refers to {named} in {source_region}, which "
            f"{'has' if len(refs) == 1 else 'have'} no verified copy in your "
            f"project in {target_region}; clone "
            f"{'it' if len(refs) == 1 else 'them'} first")


class TargetNotAuthorized(CloneError):
    def __init__(self, region, detail=''):
        msg = f"you are not allowed to create images in {region}"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)


class CopyExists(CloneError):
    """``if_exists: fail`` and the target project already holds a verified
    copy of the source.
    """

    def __init__(self, image_id, source_region, copy_id, target_region):
        super().__init__(
            f"image {image_id} of {source_region} already has a verified "
            f"copy in your project in {target_region}: image {copy_id} "
            f"(if_exists is 'fail')")


class TargetRefused(CloneError):
    """Glance refused (403) something the clone must do for the user."""

    def __init__(self, region, what):
        super().__init__(f"{region} does not let you {what}")


class TargetRejected(CloneError):
    """Glance answered another 4xx to something the clone asked for the
    user (a value it does not accept).
    """

    def __init__(self, region, what, status):
        super().__init__(f"{region} rejected {what} (HTTP {status})")


def rejected(region, what, error):
    """The sentence for a Glance 4xx (``error``: a glance.GlanceError) other
    than 403/404/409/413, or None for those and for 5xx.
    """
    status = getattr(error, 'status', None)
    if status is None or not 400 <= status < 500 or \
            status in (403, 404, 409, 413):
        return None
    return TargetRejected(region, what, status)


class ServiceUnavailable(CloneError):
    """A region's service did not answer; the copy's retry tries again."""

    def __init__(self, region, what='the image service', detail=''):
        msg = f"{what} of {region} stopped answering"
        if detail:
            msg += f": {detail}"
        super().__init__(msg)


class TargetRefusedSize(CloneError):
    """Glance answered 413: a project quota, or the region's size cap."""

    def __init__(self, region, quota=True, detail=''):
        why = 'project quota exceeded' if quota else \
            'the image is larger than the region accepts'
        super().__init__(f"{region} refused the image: {why}"
                         f"{f' ({detail})' if detail else ''}")


class TargetImageBusy(CloneError):
    """The reserved image is still 'saving' data from an earlier attempt
    (a paused or partitioned conductor): it is replaced by a fresh one.
    """

    def __init__(self, image_id, region):
        super().__init__(
            f"the reserved image {image_id} in {region} is still receiving "
            f"data from an earlier attempt")


class VerificationFailed(CloneError):
    def __init__(self, field, source_value, target_value):
        super().__init__(
            f"the copy does not match the source: {field} is {target_value!r} "
            f"in the copy but {source_value!r} in the source; the copy was "
            f"removed")


class NoStrategy(CloneError):
    def __init__(self, name, reason):
        super().__init__(
            f"store strategy '{name}' cannot copy this image: {reason}")


class NotAuthenticated(CloneError):
    def __init__(self, detail=''):
        msg = "the clone could not act for you: your delegation was refused"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)


class TrustRolesMissing(CloneError):
    """The user lacks a role the clone service must act with."""

    def __init__(self, project_id, missing):
        roles = ', '.join(f"'{r}'" for r in missing)
        super().__init__(
            f"cloning an image needs the role {roles} on project "
            f"{project_id}, which you do not have; ask the project's "
            f"administrator for it" if len(missing) == 1 else
            f"cloning an image needs the roles {roles} on project "
            f"{project_id}, which you do not all have; ask the project's "
            f"administrator for them")


class ServiceNotConfigured(CloneError):
    def __init__(self, group):
        super().__init__(
            f"the clone service user is not configured: set auth_type, "
            f"auth_url, username, password and project_name in the "
            f"[{group}] section of glance-clone's configuration")


class CredentialsRefused(CloneError):
    def __init__(self, detail=''):
        msg = "Keystone refused your credentials"
        if detail:
            msg += f": {detail}"
        super().__init__(msg)


class DelegationWithdrawn(CloneError):
    def __init__(self, region):
        super().__init__(
            f"your rights on the project were withdrawn during the clone "
            f"(Keystone no longer lets the clone act for you): the copy was "
            f"not revealed in {region} and was removed")


class Cancelled(CloneError):
    def __init__(self):
        super().__init__("cancelled by user")


class Interrupted(BaseException):
    """This process must stop running the clone now, *without reverting*.

    Raised when a conductor lost its claim on the clone (its ZooKeeper
    session expired) or is shutting down: another conductor continues the
    clone from its persisted state.  A BaseException so that TaskFlow does
    not record it as the task's failure and start reverting.
    """


def user_message(exc_type_names, exc_str, step=None):
    """The sentence for a persisted failure (type names + text)."""
    names = set(exc_type_names or ())
    if any(n.startswith('clone_flows.exceptions.') for n in names):
        return exc_str
    where = f" during {step}" if step else ''
    return (f"internal error{where}; the operator can find the details in "
            f"the clone's log")
