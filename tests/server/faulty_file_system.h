// FaultyFileSystem: a RocksDB file system for tests that fails or slows the
// write-ahead log's appends and syncs on request (a full disk, a failing
// fsync, a slow disk). Pass it as StoreOptions::file_system (or
// DaemonOptions::store_file_system).
//
// Thread safety: the switches are atomics, flipped by the test while
// RocksDB's threads write.
#ifndef AWAITD_TESTS_SERVER_FAULTY_FILE_SYSTEM_H_
#define AWAITD_TESTS_SERVER_FAULTY_FILE_SYSTEM_H_

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "rocksdb/file_system.h"

namespace awaitd::server::testing {

// A file system that fails or slows the write-ahead log's writes and syncs
// on request.
class FaultyFileSystem : public rocksdb::FileSystemWrapper {
 public:
  std::atomic<bool> no_space{false};   // appends fail with ENOSPC
  std::atomic<bool> fail_sync{false};  // syncs fail with EIO
  std::atomic<int> sync_delay_ms{0};   // syncs take this long

  FaultyFileSystem() : FileSystemWrapper(rocksdb::FileSystem::Default()) {}
  static const char* kClassName() { return "FaultyFileSystem"; }
  const char* Name() const override { return kClassName(); }

  rocksdb::IOStatus NewWritableFile(
      const std::string& name, const rocksdb::FileOptions& options,
      std::unique_ptr<rocksdb::FSWritableFile>* result,
      rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->NewWritableFile(name, options, result, dbg);
    if (s.ok() && name.size() > 4 && name.substr(name.size() - 4) == ".log") {
      *result = std::make_unique<File>(std::move(*result), this);
    }
    return s;
  }

 private:
  class File : public rocksdb::FSWritableFileOwnerWrapper {
   public:
    File(std::unique_ptr<rocksdb::FSWritableFile> f, FaultyFileSystem* fs)
        : FSWritableFileOwnerWrapper(std::move(f)), fs_(fs) {}
    rocksdb::IOStatus Append(const rocksdb::Slice& data,
                             const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override {
      if (fs_->no_space) return rocksdb::IOStatus::NoSpace("injected ENOSPC");
      return target()->Append(data, options, dbg);
    }
    rocksdb::IOStatus Append(const rocksdb::Slice& data,
                             const rocksdb::IOOptions& options,
                             const rocksdb::DataVerificationInfo& info,
                             rocksdb::IODebugContext* dbg) override {
      if (fs_->no_space) return rocksdb::IOStatus::NoSpace("injected ENOSPC");
      return target()->Append(data, options, info, dbg);
    }
    rocksdb::IOStatus Sync(const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* dbg) override {
      return Check([&] { return target()->Sync(options, dbg); });
    }
    rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                            rocksdb::IODebugContext* dbg) override {
      return Check([&] { return target()->Fsync(options, dbg); });
    }

   private:
    template <typename F>
    rocksdb::IOStatus Check(F sync) {
      if (int ms = fs_->sync_delay_ms.load(); ms > 0)
        std::this_thread::sleep_for(std::chrono::milliseconds(ms));
      if (fs_->fail_sync) return rocksdb::IOStatus::IOError("injected EIO");
      return sync();
    }
    FaultyFileSystem* fs_;
  };
};

}  // namespace awaitd::server::testing

#endif  // AWAITD_TESTS_SERVER_FAULTY_FILE_SYSTEM_H_
