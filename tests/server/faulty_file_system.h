// FaultyFileSystem: a RocksDB file system for tests that fails, slows or
// hangs the write-ahead log's appends and syncs on request (a full disk, a
// failing fsync, a full disk reported by the fsync, a slow disk, a hung
// disk). Pass it as StoreOptions::file_system (or
// DaemonOptions::store_file_system).
//
//   fs->HangSyncs();        // the next syncs block...
//   fs->AwaitHungSyncs(1);  // ...one of them is blocked now
//   fs->ReleaseSyncs();     // they go on (and later ones do not block)
//
// Thread safety: the switches are atomics, flipped by the test while
// RocksDB's threads write; the hang is guarded by its mutex.
#ifndef AWAITD_TESTS_SERVER_FAULTY_FILE_SYSTEM_H_
#define AWAITD_TESTS_SERVER_FAULTY_FILE_SYSTEM_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
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
  // Syncs report ENOSPC although the appends before them, and the sync
  // itself, succeeded: the record is on disk, and only RocksDB's handling
  // of the failed write decides whether a reopen replays it.
  std::atomic<bool> sync_no_space{false};

  // A hung disk: syncs block from now until ReleaseSyncs().
  void HangSyncs() {
    std::lock_guard<std::mutex> lock(hang_mu_);
    hang_ = true;
  }
  void ReleaseSyncs() {
    std::lock_guard<std::mutex> lock(hang_mu_);
    hang_ = false;
    hang_cv_.notify_all();
  }
  // Waits until `n` syncs are blocked by the hang.
  void AwaitHungSyncs(int n) {
    std::unique_lock<std::mutex> lock(hang_mu_);
    hang_cv_.wait(lock, [&] { return hung_ >= n; });
  }

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
      fs_->WaitWhileHung();
      if (fs_->fail_sync) return rocksdb::IOStatus::IOError("injected EIO");
      rocksdb::IOStatus s = sync();
      if (s.ok() && fs_->sync_no_space)
        return rocksdb::IOStatus::NoSpace("injected ENOSPC on sync");
      return s;
    }
    FaultyFileSystem* fs_;
  };

  void WaitWhileHung() {
    std::unique_lock<std::mutex> lock(hang_mu_);
    if (!hang_) return;
    ++hung_;
    hang_cv_.notify_all();
    hang_cv_.wait(lock, [&] { return !hang_; });
    --hung_;
  }

  std::mutex hang_mu_;
  std::condition_variable hang_cv_;
  bool hang_ = false;  // guarded by hang_mu_
  int hung_ = 0;       // syncs blocked now; guarded by hang_mu_
};

}  // namespace awaitd::server::testing

#endif  // AWAITD_TESTS_SERVER_FAULTY_FILE_SYSTEM_H_
