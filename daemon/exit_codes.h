#pragma once
// starlingd's exit codes: what a node tells systemd and `starlingctl up` about why it ended.
// The unit file's RestartPreventExitStatus and up's fail-fast (a node that could not start
// ends the run) depend on them.

namespace starling::daemon {

// Process exit codes of starlingd (also listed in its --help).
enum ExitCode : int {
  kExitOk = 0,            // finished training, or stopped on request after a checkpoint
  kExitFailure = 1,       // an unexpected runtime failure
  kExitConfig = 2,        // invalid cluster file or command line, or a run directory that
                          // cannot hold the node's files (a file or directory in the way,
                          // no permission) or whose checkpoints are of another model or shard
  kExitTraining = 3,      // dataset or device problem (missing file, empty shard, no CUDA)
  kExitNetwork = 4,       // cannot bind the data or control endpoint, or the node directory
                          // is another live starlingd's
};

}  // namespace starling::daemon
