// awaitctl's main, as a function: parse the command line, answer --help and
// --version, check the command's arguments, connect, run the command, and
// return the exit code (the table in `awaitctl --help`).
//
// Thread safety: call once, from main, before any other thread starts (it
// blocks SIGINT and SIGTERM for every thread; see interrupts.h).
#ifndef AWAITD_CLIENT_AWAITCTL_APP_H_
#define AWAITD_CLIENT_AWAITCTL_APP_H_

namespace awaitd::awaitctl {

int Main(int argc, char** argv);

}  // namespace awaitd::awaitctl

#endif  // AWAITD_CLIENT_AWAITCTL_APP_H_
