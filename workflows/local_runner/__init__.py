"""argo-local: run a rendered Argo WorkflowTemplate on this machine, faithfully but small.

No Argo tool runs a workflow without a cluster (hera#1492), so this package executes the rendered
document itself, the way the Argo controller and executor would, for the features this project
uses. Its modules: ``model`` (nodes, the run, errors), ``expressions`` (durations, ``when``),
``templating`` (``{{...}}`` substitution), ``feature_gate`` (what is refused before running),
``scheduling`` (parallelism, failFast, DAG order and target), ``orchestrator`` (templates, steps,
DAG tasks, fan-out, the exit handler), ``step_outputs`` (outputs of steps and steps/DAG
templates), ``retrying`` (``retryStrategy``: policy, backoff, expression), ``executor`` (one leaf
node: its attempts, the subprocess, its outputs) and ``jobs`` (``run_local`` for the registered
jobs).
Beside them: ``arguments`` (the workflow's parameters, a template's inputs), ``deadlines``
(``activeDeadlineSeconds``, ``timeout``, a step's process group) and ``synchronization`` (mutexes
as file locks).

- ``steps`` templates (groups in order, the steps of a group side by side) and ``dag`` templates
  (tasks in dependency order, by ``dependencies`` or a ``depends`` of task names joined by
  ``&&``, run in waves of ready tasks; with ``dag.target``, a space-separated list of task names
  (workflow variables allowed), only those tasks and what they depend on run);
- ``script`` templates, run like the executor does: the substituted ``source`` is written to a
  file that is appended to ``command + args``. For a Hera runner step that is
  ``python -m hera.workflows.runner -e module:function <file>``, the file holding
  ``{{inputs.parameters}}`` as JSON. ``container`` templates run ``command + args``. ``python``
  (or ``python3``) means this interpreter; every command runs in a subprocess;
- variables: ``{{inputs.parameters.x}}``, ``{{inputs.parameters}}`` (the JSON list),
  ``{{workflow.parameters.x}}``, ``{{workflow.name}}``, ``{{workflow.namespace}}``,
  ``{{workflow.uid}}``, ``{{workflow.status}}``, ``{{workflow.failures}}`` (exit handler),
  ``{{item}}``/``{{item.key}}``, ``{{steps.X.outputs.result}}``,
  ``{{steps.X.outputs.parameters.y}}``, ``{{steps.X.outputs.parameters}}``, ``{{steps.X.status}}``
  and the same for ``tasks.X``. Unresolvable variables are errors, as in Argo;
- outputs: ``outputs.result`` is the script's stdout (one trailing newline trimmed, the last
  256 kB kept); ``outputs.parameters`` from ``valueFrom.path`` (with ``default``) in leaf
  templates and ``valueFrom.parameter`` in steps/DAG templates; ``outputs.artifacts`` are copied
  into a local artifact folder, at their S3 ``key`` when they have one. A fanned-out step's
  outputs are aggregated as Argo does: ``outputs.result`` is a JSON list in which each result
  that parses as a JSON object is that object and any other result is a string;
  ``outputs.parameters`` is a JSON list of ``{name: value}`` maps;
- ``when``: the substituted condition, in the subset of Argo's (govaluate) syntax that
  ``evaluate_when`` reads: ``==`` and ``!=`` between quoted strings, numbers, ``true``/``false``
  and bare words (a bare word is its own text, as in Argo), joined by ``&&`` and ``||``, with
  parentheses. A step or task whose condition is false is Skipped (each item of a fan-out on its
  own, with ``{{item}}`` in scope); it has no outputs, and a Skipped dependency counts as done;
- ``withParam`` (a JSON list) and ``withItems`` fan-out, limited by the template's (and the
  workflow's) ``parallelism`` and by ``max_parallel`` of this runner: threads, one subprocess
  each; with a limit of 1 the children run one after another;
- ``failFast``, as Argo's controller reads it. A steps or DAG template's own ``failFast: true``
  (off by default): once one of its children (a step or task, or an item of their fan-outs) has
  failed, no new child starts; those running finish and the template fails. A DAG's
  ``dag.failFast`` (on by default): the same for the DAG's tasks and their items; with
  ``dag.failFast: false`` every branch runs to the end (what depends on a failed task is
  omitted) and the DAG still fails. Without either, a steps template starts every child of the
  failing group (its later groups do not run) and the group fails;
- ``retryStrategy``: ``limit`` retries under ``retryPolicy`` (Always, OnFailure, OnError;
  OnTransientError retries errors only) AND its ``expression`` (with an expression and no policy,
  the expression alone decides, as in Argo 3.5+): comparisons of ``asInt(lastRetry.exitCode)``
  (-1 when the attempt left none) and ``asInt(lastRetry.duration)`` with a number, of
  ``lastRetry.status`` with a string, joined by ``&&`` and ``||``; waiting Argo's backoff
  (``duration * factor^n``, at most ``cap``; no retry once ``maxDuration`` has passed), each
  wait cut to ``max_backoff_s`` here. A failed node's message is the step's own error line (the
  last line of its stderr that says what was wrong: ``bad input: …``, a traceback's
  ``SomeError: …``), with its exit code and the attempts made; the whole log stays in the
  node's folder;
- ``synchronization`` mutexes (``spec.synchronization`` for the whole run, exit handler
  included; a template's while it runs): each name substituted (workflow parameters, a
  template's inputs) and held as a file lock under ``<work_dir>/locks``, keyed by namespace and
  name, so local runs that name the same mutex (the ingestions and removals into one
  collection) take turns, across threads and processes; the wait has no limit, as a Pending
  workflow's in Argo;
- ``activeDeadlineSeconds``: the workflow's counts from when its mutexes are held; past it no
  step starts ("Step exceeded its deadline"), a running step is killed, nothing is retried, and
  the exit handler still runs, unlimited, as in Argo. A template's limits each attempt (the
  pod's deadline; a failure the retry strategy may retry, exit code -1 to its expression), its
  ``timeout`` the node's attempts together. A step runs in a process group of its own: at its
  limit the group gets SIGTERM, then SIGKILL, and what a step leaves running when it exits is
  killed too, as a container's processes end with it; the node's message names the limit;
- ``spec.onExit``: the exit handler always runs, after the entrypoint, with the workflow's
  arguments and ``{{workflow.status}}`` Succeeded or Failed (Error when the document itself was
  wrong); a failing exit handler fails the run, as in Argo.
- ``resource`` templates (``resource``, ``conditions``): ``get``, ``create``, ``apply``,
  ``replace``, ``delete`` and ``patch`` (``mergeStrategy`` merge or json) through the Kubernetes
  API of ``LLMW_KUBECONFIG``, then the wait on ``successCondition``/``failureCondition`` read as
  Argo reads them (Kubernetes label-selector syntax over the object's JSON), and output
  parameters from ``valueFrom.jsonPath``;

Environment: each step runs with this runner's environment (``run_local`` puts the given
settings there as ``LLMW_*`` variables). The template's own ``env`` is cluster configuration and
is dropped: values from ``secretKeyRef`` (no cluster Secrets here), the in-cluster Milvus URI and
the GPU placement's variables (``HSA_OVERRIDE_GFX_VERSION``); only Hera's runner variables
(``hera__*``) are kept, with ``hera__outputs_directory`` moved to a folder of the node, and output
paths under it remapped there, and ``TRACEPARENT`` when the run's ``traceparent`` parameter is set
(an empty one keeps the runner's own ``$TRACEPARENT``). Node selectors, tolerations, resources
and images are ignored.
So are ``serviceAccountName``, ``podGC`` and ``ttlStrategy`` (the node folders stay until removed).

Not supported (refused before anything runs, naming the field): expressions (``{{=...}}``),
other ``when`` syntax, ``continueOn``, ``templateRef``, inline templates, ``withSequence``, input
artifacts, suspend/http/plugin/data/containerSet templates, a resource's ``manifestFrom``,
daemons, sidecars, init containers, memoization, lifecycle hooks, any other
``retryStrategy.expression`` (``lastRetry.message``, ``matches``, variables, functions) or a
retry without a ``limit``, a ``failFast`` that is not a boolean, a ``dag.target`` naming no task.
Nor semaphores (``synchronization.semaphores``, sized by a ConfigMap in the cluster), nor an
``activeDeadlineSeconds`` that is not whole seconds (a variable).
"""

from .executor import MAX_RESULT_BYTES
from .expressions import evaluate_when, parse_duration
from .feature_gate import check_supported
from .jobs import DEFAULT_WORK_DIR, ENV_PREFIX, run_local
from .model import LocalRunError, LocalWorkflowRun, NodeStatus, UnsupportedFeatureError
from .orchestrator import ArgoLocalRunner
from .templating import substitute

__all__ = [
    "DEFAULT_WORK_DIR",
    "ENV_PREFIX",
    "MAX_RESULT_BYTES",
    "ArgoLocalRunner",
    "LocalRunError",
    "LocalWorkflowRun",
    "NodeStatus",
    "UnsupportedFeatureError",
    "check_supported",
    "evaluate_when",
    "parse_duration",
    "run_local",
    "substitute",
]
