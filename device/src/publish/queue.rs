//! A bounded FIFO between one producer that must never wait (the inference
//! thread) and one consumer thread that may block.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

#[derive(Debug)]
struct State<T> {
    items: VecDeque<T>,
    closed: bool,
}

/// Bounded queue; the producer chooses what happens when it is full.
#[derive(Debug)]
pub struct Queue<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
    capacity: usize,
}

impl<T> Queue<T> {
    pub fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State {
                items: VecDeque::with_capacity(capacity.max(1)),
                closed: false,
            }),
            ready: Condvar::new(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A consumer that panicked cannot corrupt a VecDeque of owned items.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends, dropping the oldest item when full; returns the dropped item.
    pub fn push_drop_oldest(&self, item: T) -> Option<T> {
        let mut s = self.lock();
        let dropped = if s.items.len() >= self.capacity {
            s.items.pop_front()
        } else {
            None
        };
        s.items.push_back(item);
        drop(s);
        self.ready.notify_one();
        dropped
    }

    /// Appends unless full; a full queue gives the item back.
    pub fn try_push(&self, item: T) -> Result<(), T> {
        let mut s = self.lock();
        if s.closed || s.items.len() >= self.capacity {
            return Err(item);
        }
        s.items.push_back(item);
        drop(s);
        self.ready.notify_one();
        Ok(())
    }

    /// Waits for the next item; `None` once closed and drained.
    pub fn pop(&self) -> Option<T> {
        let mut s = self.lock();
        loop {
            if let Some(item) = s.items.pop_front() {
                return Some(item);
            }
            if s.closed {
                return None;
            }
            s = self
                .ready
                .wait_timeout(s, Duration::from_millis(500))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// No more items will come; the consumer drains what is queued.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// Closes and discards what is queued.
    pub fn abort(&self) {
        let mut s = self.lock();
        s.closed = true;
        s.items.clear();
        drop(s);
        self.ready.notify_all();
    }

    /// True once [`close`](Self::close) or [`abort`](Self::abort) was called.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn drops_oldest_when_full() {
        let q = Queue::new(2);
        assert_eq!(q.push_drop_oldest(1), None);
        assert_eq!(q.push_drop_oldest(2), None);
        assert_eq!(q.push_drop_oldest(3), Some(1));
        assert_eq!(q.try_push(4), Err(4));
        q.close();
        assert_eq!((q.pop(), q.pop(), q.pop()), (Some(2), Some(3), None));
    }

    #[test]
    fn consumer_wakes_up() {
        let q = Arc::new(Queue::new(4));
        let c = Arc::clone(&q);
        let t = std::thread::spawn(move || c.pop());
        std::thread::sleep(Duration::from_millis(20));
        q.try_push(7).unwrap();
        assert_eq!(t.join().unwrap(), Some(7));
    }
}
