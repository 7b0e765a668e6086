"""Names of the data flowing through the clone graph, and of its atoms.

Stable: persisted flow details refer to them, and a conductor in another
process rebuilds the same graph from the factory's dotted name.
"""

# -- inputs (persisted; ids and plain values only, never a secret) ---------
CLONE_ID = 'clone_id'
SOURCE_REGION = 'source_region'
SOURCE_IMAGE_ID = 'source_image_id'
TARGET_REGION = 'target_region'
TRUST_ID = 'trust_id'
OVERRIDES = 'overrides'            # name, visibility, properties, tags
STRATEGY_NAME = 'strategy_name'    # 'auto' or a store strategy's name
DRY_RUN = 'dry_run'                # True: check and plan, change nothing
IF_EXISTS = 'if_exists'            # 'copy', 'reuse' or 'fail'
INCLUDE_DEPENDENCIES = 'include_dependencies'  # clone kernel/ramdisk too

# -- transient input (rebuilt on every run; never persisted) ---------------
SERVICES = 'services'

# -- provided as the graph runs ----------------------------------------------
SOURCE_IMAGE = 'source_image'      # the source image's metadata
CLONED_DEPENDENCIES = 'cloned_dependencies'  # {kernel_id: copy id...}
MAPPED_PROPERTIES = 'mapped_properties'  # references, as the target knows them
COPY_PLAN = 'copy_plan'            # strategy, reason, bytes_total
TARGET_IMAGE_ID = 'target_image_id'
COPY_RESULT = 'copy_result'
VERIFIED_HASH = 'verified_hash'
SYNCED_PROPERTIES = 'synced_properties'
CLONED_IMAGE = 'cloned_image'      # the user's result
COPY_CHECKPOINT = 'checkpoint'     # handed back to CopyData on resume
EXISTING_COPY = 'existing_copy'    # a verified copy already in the target
DRY_RUN_PLAN = 'dry_run_plan'      # what a dry run established, the user's

# -- atoms --------------------------------------------------------------------
CLONE_FLOW = 'glance-clone'
CLONE_BODY = 'clone-make-copy'
HOLD_TRUST = 'clone-hold-trust'
AUTHORIZE = 'clone-authorize'
CLONE_DEPENDENCIES = 'clone-dependencies'
CHECK_METADATA = 'clone-check-metadata'
PLAN_COPY = 'clone-plan-copy'
RESERVE_IMAGE = 'clone-reserve-image'
RESERVE_FLOW = 'clone-reserve-and-copy'
RESERVE_RETRY = 'clone-reserve-retry'
COPY_FLOW = 'clone-copy'
COPY_RETRY = 'clone-copy-retry'
COPY_DATA = 'clone-copy-data'
VERIFY = 'clone-verify'
SYNC_PROPERTIES = 'clone-sync-properties'
ACTIVATE = 'clone-activate'
RELEASE_TRUST = 'clone-release-trust'
FIND_COPY = 'clone-find-existing-copy'
RELEASE_TRUST_REUSED = 'clone-release-trust-reused'
DRY_RUN_REPORT = 'clone-dry-run-report'

IF_EXISTS_CHOICES = ('copy', 'reuse', 'fail')

#: Human names of the steps, for messages ("failed while copying data").
STEP_NAMES = {
    HOLD_TRUST: 'acting for you',
    AUTHORIZE: 'checking access',
    CLONE_DEPENDENCIES: 'cloning the kernel and ramdisk images',
    CHECK_METADATA: "checking the image's metadata",
    PLAN_COPY: 'planning the copy',
    RESERVE_IMAGE: 'reserving the target image',
    COPY_DATA: 'copying data',
    VERIFY: 'verifying the copy',
    SYNC_PROPERTIES: 'copying metadata',
    ACTIVATE: 'activating the copy',
    RELEASE_TRUST: 'releasing the delegation',
    FIND_COPY: 'looking for an existing copy',
    RELEASE_TRUST_REUSED: 'releasing the delegation',
    DRY_RUN_REPORT: 'reporting the plan',
}
