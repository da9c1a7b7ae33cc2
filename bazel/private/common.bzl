"""The single way every rule runs the engine: `python3 -I -B bootstrap.py --path ... -- STEP`."""

load(":providers.bzl", "DistrolessToolInfo", "EngineStepsInfo", "PythonInfo")

# The only environment an action gets: a fixed PATH (where `python3` is looked up on any worker)
# and a UTF-8 locale. Nothing from the client.
ACTION_ENV = {"LC_ALL": "C.UTF-8", "PATH": "/usr/local/bin:/usr/bin:/bin"}

def _python_flag_impl(ctx):
    value = ctx.build_setting_value
    if not value or " " in value:
        fail("--%s: expected an interpreter name on PATH or an absolute path, got %r" % (ctx.label, value))
    return [PythonInfo(interpreter = value)]

python_flag = rule(
    implementation = _python_flag_impl,
    build_setting = config.string(flag = True),
    doc = "The interpreter every action runs (a name looked up on the action's PATH, or an absolute path on the executor).",
)

def _engine_steps_impl(ctx):
    steps = {}
    for target, step in ctx.attr.steps.items():
        steps[step] = depset(target.files.to_list())
    return [EngineStepsInfo(steps = steps)]

engine_steps = rule(
    implementation = _engine_steps_impl,
    attrs = {"steps": attr.label_keyed_string_dict(allow_files = True, mandatory = True)},
    doc = "Step name -> the engine files it imports (generated into distroless/BUILD.bazel).",
)

def _root_of(f, suffix, use_short_path):
    p = f.short_path if use_short_path else f.path
    if not p.endswith(suffix):
        fail("%s does not end with %s" % (p, suffix))
    root = p[:len(p) - len(suffix)].rstrip("/")
    return root or "."

def _distroless_tool_impl(ctx):
    python = ctx.attr.python[PythonInfo].interpreter
    engine_root = _root_of(ctx.file.engine_init, "distroless/__init__.py", False)
    site_root = _root_of(ctx.file.site_marker, "marker", False) + "/site"
    run_engine_root = _root_of(ctx.file.engine_init, "distroless/__init__.py", True)
    run_site_root = _root_of(ctx.file.site_marker, "marker", True) + "/site"
    common = depset(
        [ctx.file.bootstrap, ctx.file.site_marker, ctx.file.abi],
        transitive = [depset(ctx.files.site)],
    )
    steps = ctx.attr.steps[EngineStepsInfo].steps
    all_engine = depset(transitive = steps.values())
    runfiles = ctx.runfiles(transitive_files = depset([ctx.executable.wrapper], transitive = [common, all_engine]))
    return [
        DefaultInfo(files = depset([ctx.executable.wrapper]), runfiles = runfiles),
        DistrolessToolInfo(
            executable = ctx.executable.wrapper,
            python = python,
            common = common,
            steps = steps,
            args = [python, ctx.file.bootstrap.path, "--abi", ctx.file.abi.path,
                    "--path", site_root, "--path", engine_root, "--"],
            run_args = [ctx.file.bootstrap.short_path, "--abi", ctx.file.abi.short_path,
                        "--path", run_site_root, "--path", run_engine_root, "--"],
            run_executable = ctx.executable.wrapper.short_path,
        ),
    ]

distroless_tool = rule(
    implementation = _distroless_tool_impl,
    attrs = {
        "wrapper": attr.label(executable = True, cfg = "exec", allow_single_file = True, mandatory = True),
        "python": attr.label(providers = [PythonInfo], mandatory = True),
        "bootstrap": attr.label(allow_single_file = [".py"], mandatory = True),
        "steps": attr.label(providers = [EngineStepsInfo], mandatory = True),
        "engine_init": attr.label(allow_single_file = True, mandatory = True),
        "abi": attr.label(allow_single_file = True, mandatory = True),
        "site": attr.label(allow_files = True, mandatory = True),
        "site_marker": attr.label(allow_single_file = True, mandatory = True),
    },
    doc = "The engine (per step), its third-party modules and the interpreter choice, as one tool.",
)

TOOL_ATTR = {
    "_tool": attr.label(
        default = Label("//bazel:tool"),
        cfg = "exec",
        providers = [DistrolessToolInfo],
    ),
}

def step_inputs(tool, step):
    if step not in tool.steps:
        fail("no file group for step %r in //distroless:steps (run `python3 bazel/engine_files.py`)" % step)
    return depset(transitive = [tool.common, tool.steps[step]])

def run_step(ctx, step, args, inputs, outputs, mnemonic, progress, source_date_epoch = "", execution_requirements = None):
    """One engine step as one action. `args`: an Args object (after the step name). Its inputs
    are the step's own engine files (not the whole engine) plus `inputs`."""
    tool = ctx.attr._tool[DistrolessToolInfo]
    lead = ctx.actions.args()
    lead.add_all(tool.args)
    if source_date_epoch:
        # a global flag of distroless.steps: actions get no SOURCE_DATE_EPOCH from the client
        lead.add("--source-date-epoch=" + source_date_epoch)
    lead.add(step)
    ctx.actions.run(
        executable = tool.executable,
        arguments = [lead, args],
        inputs = depset(inputs, transitive = [step_inputs(tool, step)]),
        outputs = outputs,
        mnemonic = mnemonic,
        progress_message = progress,
        env = ACTION_ENV,
        execution_requirements = execution_requirements or {},
    )

def run_script(ctx, name, step, args, extra_runfiles, pre = []):
    """An executable shell script for `bazel run` / test rules. `args` are shell words already
    quoted; `$R` is the runfiles workspace directory the script starts in."""
    tool = ctx.attr._tool[DistrolessToolInfo]
    script = ctx.actions.declare_file(name)
    cmd = ['"$R/%s"' % tool.run_executable, shell_quote(tool.python)]
    cmd += [a if a in ("--path", "--abi", "--") else '"$R/%s"' % a for a in tool.run_args]
    ctx.actions.write(
        script,
        "\n".join([
            "#!/bin/sh",
            "# generated by the distroless rules",
            "set -eu",
            'R="$(pwd)"',
        ] + pre + [
            "exec %s %s %s \"$@\"" % (" ".join(cmd), step, " ".join(args)),
        ]) + "\n",
        is_executable = True,
    )
    runfiles = ctx.runfiles(files = extra_runfiles).merge(ctx.attr._tool[DefaultInfo].default_runfiles)
    return script, runfiles

def workspace_lock(ctx, step, flag, src, suffix, extra_args = []):
    """A `bazel run` script that (re)writes a lock file in the workspace: it runs there
    (BUILD_WORKSPACE_DIRECTORY), so `src`'s relative paths (keyrings, repositories) resolve."""
    lock = ctx.attr.lock_path or (ctx.label.package + "/" + ctx.label.name + suffix)
    args = [flag, shell_quote(src.short_path), "--out", shell_quote(lock)] + extra_args
    script, runfiles = run_script(ctx, ctx.label.name + ".sh", step, args, [src],
                                  pre = ['cd "$BUILD_WORKSPACE_DIRECTORY"'])
    return [DefaultInfo(executable = script, runfiles = runfiles)]

def rpath(f):
    """A File as a quoted shell word in a run script."""
    return '"$R/%s"' % f.short_path

def shell_quote(s):
    return "'" + s.replace("'", "'\\''") + "'"
