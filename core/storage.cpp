#include "core/storage.h"

#include "core/error.h"

namespace graft {

StorageImpl::StorageImpl(size_t nbytes, Device device)
    : nbytes_(nbytes), device_(device), owned_(true) {
  if (device.is_cpu()) {
    data_ = cpu_allocator()->allocate(nbytes, 0);
  } else {
    GRAFT_CHECK(device_available(device), "cannot allocate on ", device.str(), ": ",
                device_unavailable_reason(device.type));
    data_ = device_backend(device.type).allocator->allocate(nbytes, device.index);
  }
}

StorageImpl::StorageImpl(void* data, size_t nbytes, Device device,
                         std::function<void(void*)> deleter)
    : data_(data), nbytes_(nbytes), device_(device), deleter_(std::move(deleter)) {}

StorageImpl::~StorageImpl() {
  if (owned_) {
    if (device_.is_cpu()) {
      cpu_allocator()->deallocate(data_, nbytes_, 0);
    } else {
      device_backend(device_.type).allocator->deallocate(data_, nbytes_, device_.index);
    }
  } else if (deleter_) {
    deleter_(data_);
  }
}

}  // namespace graft
