/* car_tf evaluation report: a before/after slider and a zoom for every image. No dependencies;
   inlined into the page by car_tf/evaluation/html_report.py.

   Each <article class="image"> holds its pictures in a strip (<img data-kind="hr|lr|sr">) and a
   viewer. The viewer shows two of them, one over the other, split by a range input (arrow keys
   move it). The zoom shows the same square of both at 2-8x, nearest neighbour; its position is
   kept in HR pixels, so it stays put when another picture is chosen. */
"use strict";

(function () {
  const ZOOM_SIZE = 256; // canvas pixels

  function clamp(value, low, high) {
    return Math.max(low, Math.min(high, value));
  }

  function setUp(article) {
    const viewer = article.querySelector(".viewer");
    const pictures = Array.from(article.querySelectorAll(".strip img"));
    const buttons = Array.from(article.querySelectorAll(".strip button"));
    const stage = viewer.querySelector(".stage");
    const shown = [stage.querySelector("img.before"), stage.querySelector("img.after")];
    const picks = [viewer.querySelector(".pick-before"), viewer.querySelector(".pick-after")];
    const zooms = [viewer.querySelector(".zoom-before"), viewer.querySelector(".zoom-after")];
    const zoomCaptions = zooms.map((canvas) => canvas.parentNode.querySelector("figcaption"));
    const factor = viewer.querySelector(".zoom-factor");
    const split = viewer.querySelector(".split");
    const divider = stage.querySelector(".divider");
    const lens = stage.querySelector(".lens");
    const caption = viewer.querySelector(".caption");
    const scale = Number(viewer.dataset.scale);
    const width = Number(viewer.dataset.width);
    const height = Number(viewer.dataset.height);
    let x = Number(viewer.dataset.zoomX);
    let y = Number(viewer.dataset.zoomY);

    function picked(side) {
      return pictures[Number(picks[side].value)];
    }

    // The zoomed square in HR pixels, on the LR grid so that LR pixels stay whole.
    function region() {
      const size = Math.min(ZOOM_SIZE / Number(factor.value), width, height);
      const snap = (value, limit) =>
        clamp(Math.round((value - size / 2) / scale) * scale, 0, Math.max(0, limit - size));
      return { left: snap(x, width), top: snap(y, height), size: size };
    }

    function drawZoom(side) {
      const image = shown[side];
      const canvas = zooms[side];
      if (!image.complete || image.naturalWidth === 0) {
        image.addEventListener("load", () => drawZoom(side), { once: true });
        return;
      }
      const box = region();
      const ratio = image.naturalWidth / width;
      const context = canvas.getContext("2d");
      context.imageSmoothingEnabled = false;
      context.clearRect(0, 0, canvas.width, canvas.height);
      context.drawImage(image, box.left * ratio, box.top * ratio, box.size * ratio,
                        box.size * ratio, 0, 0, canvas.width, canvas.height);
      const what = `${picked(side).dataset.label}, HR pixels ${box.left}-${box.left + box.size} ` +
                   `across, ${box.top}-${box.top + box.size} down`;
      canvas.setAttribute("aria-label", `Zoom of ${what}`);
      zoomCaptions[side].textContent = `${side === 0 ? "Left" : "Right"}: ${what}`;
      lens.style.left = `${(100 * box.left) / width}%`;
      lens.style.top = `${(100 * box.top) / height}%`;
      lens.style.width = `${(100 * box.size) / width}%`;
      lens.style.height = `${(100 * box.size) / height}%`;
    }

    function drawZooms() {
      drawZoom(0);
      drawZoom(1);
    }

    function moveZoom(newX, newY) {
      x = clamp(newX, 0, width);
      y = clamp(newY, 0, height);
      viewer.dataset.zoomX = String(Math.round(x));
      viewer.dataset.zoomY = String(Math.round(y));
      drawZooms();
    }

    function describe() {
      const value = Number(split.value);
      caption.textContent = `Left of the divider: ${picked(0).dataset.caption}. ` +
                            `Right: ${picked(1).dataset.caption}.`;
      split.setAttribute("aria-valuetext",
                         `${value}% ${picked(0).dataset.label}, ${100 - value}% ${picked(1).dataset.label}`);
    }

    function show(side) {
      const picture = picked(side);
      shown[side].src = picture.getAttribute("src");
      shown[side].alt = picture.alt;
      shown[side].classList.toggle("lr", picture.dataset.kind === "lr");
      buttons.forEach((button, index) => button.setAttribute(
        "aria-pressed", String(index === Number(picks[0].value) || index === Number(picks[1].value))));
      describe();
      drawZoom(side);
    }

    function setSplit(value) {
      const percent = clamp(Math.round(value), 0, 100);
      split.value = String(percent);
      shown[1].style.clipPath = `inset(0 0 0 ${percent}%)`;
      divider.style.left = `${percent}%`;
      viewer.dataset.split = String(percent);
      describe();
    }

    function stagePoint(event) {
      const rect = stage.getBoundingClientRect();
      return {
        x: ((event.clientX - rect.left) / rect.width) * width,
        y: ((event.clientY - rect.top) / rect.height) * height,
        percent: (100 * (event.clientX - rect.left)) / rect.width,
      };
    }

    picks.forEach((pick, side) => pick.addEventListener("change", () => show(side)));
    factor.addEventListener("change", drawZooms);
    split.addEventListener("input", () => setSplit(Number(split.value)));
    stage.addEventListener("pointermove", (event) => {
      const point = stagePoint(event);
      moveZoom(point.x, point.y);
      if (event.buttons & 1) setSplit(point.percent);
    });
    stage.addEventListener("pointerdown", (event) => setSplit(stagePoint(event).percent));
    zooms.forEach((canvas) => canvas.addEventListener("keydown", (event) => {
      const step = region().size / 4;
      const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step],
                      ArrowDown: [0, step] };
      if (!(event.key in moves)) return;
      event.preventDefault();
      moveZoom(x + moves[event.key][0], y + moves[event.key][1]);
    }));
    buttons.forEach((button, index) => button.addEventListener("click", (event) => {
      const side = event.shiftKey ? 0 : 1;
      picks[side].value = String(index);
      show(side);
    }));

    setSplit(Number(split.value));
    show(0);
    show(1);
  }

  document.querySelectorAll("article.image").forEach(setUp);
})();
