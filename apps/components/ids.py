"""Component ids, one class per page (the Dash "ids class" pattern): callbacks and tests
refer to ``GraphIds.cyto`` rather than repeating string literals."""


class RunsIds:
    """Ids of the Runs page."""

    filter = "runs-filter"
    table = "runs-table"


class GraphIds:
    """Ids of the causal graph page."""

    run = "graph-run"
    pinned = "graph-pinned"
    selected = "graph-selected"
    mode = "graph-mode"
    slider = "graph-slider"
    compare = "graph-compare"
    options = "graph-options"
    pin = "graph-pin"
    clear = "graph-clear-pins"
    export_json = "graph-export-json"
    export_png = "graph-export-png"
    download = "graph-download"
    cyto = "graph-cyto"
    summary = "graph-summary"
    status = "graph-status"
    hover = "graph-hover"
    node = "graph-node"
    faith = "graph-faith"


class PatchingIds:
    """Ids of the patching page."""

    heatmaps = "patching-heatmaps"


class FeatureIds:
    """Ids of the feature page."""

    run = "feature-run"
    select = "feature-select"
    panel = "feature-panel"


class UnitsIds:
    """Ids of the units page (dissection labels)."""

    run = "units-run"
    site = "units-site"
    filter = "units-filter"
    sort = "units-sort"
    labelled = "units-labelled"
    table = "units-table"
    unit = "units-unit"
    examples = "units-examples"
